"""Results JSON: schema, per-scenario breakdown, table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from allmrec.evaluation.results import build_results, format_table, summarize, write_results


def test_summarize_by_scenario_by_hand():
    per_user = {"hit@1": np.array([1.0, 0.0, 1.0, 1.0]), "mrr": np.array([1.0, 0.5, 1.0, 0.25])}
    overall, scen = summarize(per_user, ["warm", "cold", "warm", "cold"], split="test")
    assert overall == {"hit@1": 0.75, "mrr": pytest.approx(0.6875)}
    assert scen["warm"] == {"n_users": 2, "metrics": {"hit@1": 1.0, "mrr": 1.0}}
    assert scen["cold"] == {"n_users": 2, "metrics": {"hit@1": 0.5, "mrr": 0.375}}
    # a scenario nobody falls in is reported as empty, never as a 0 score
    assert scen["mid"] == {"n_users": 0, "metrics": None}


def test_cold_user_split_reports_cold_user_scenario():
    _, scen = summarize({"hit@1": np.array([1.0, 0.0])}, ["cold_user", "cold_user"], split="cold_user_test")
    assert list(scen) == ["cold_user"] and scen["cold_user"]["metrics"]["hit@1"] == 0.5


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError):
        summarize({"hit@1": np.array([1.0])}, ["warm", "cold"])


def test_build_and_write_results(tmp_path):
    res = build_results(
        model="runs/m", model_type="sasrec", dataset="tiny", split="test",
        per_user={"hit@1": np.array([1.0, 0.0]), "valid_rate": np.array([1.0, 1.0])},
        scenarios=["warm", "cold"], candidate_fingerprint="abc", command="allmrec evaluate --model runs/m",
        timings={"scoring": 1.5}, mode="rank",
    )
    for key in ("model", "model_type", "dataset", "split", "n_users", "metrics", "scenarios", "candidate_fingerprint",
                "command", "timings", "rank_rule"):
        assert key in res
    assert res["n_users"] == 2 and res["metrics"]["valid_rate"] == 1.0 and res["mode"] == "rank"
    write_results(tmp_path / "r.json", res)
    assert json.loads((tmp_path / "r.json").read_text())["candidate_fingerprint"] == "abc"
    table = format_table(res)
    assert "overall" in table and "warm" in table and "valid_rate" in table
    with pytest.raises(ValueError):
        build_results(model="m", model_type="x", dataset="d", split="test", per_user={}, scenarios=[],
                      candidate_fingerprint="f", metrics={})


def test_bootstrap_intervals_behave():
    import numpy as np

    from allmrec.evaluation.statistics import bootstrap_interval, paired_difference

    assert bootstrap_interval([1.0] * 20) == (1.0, 1.0)
    lo, hi = bootstrap_interval([1, 0] * 50)
    assert lo < 0.5 < hi and hi - lo == pytest.approx(2 * 1.96 * 0.05, abs=0.03)  # normal approximation, n = 100
    lo4, hi4 = bootstrap_interval([1, 0] * 400)
    assert hi4 - lo4 < (hi - lo) / 1.6  # ~1/2 with 4x the users
    assert bootstrap_interval([1, 0, 1], seed=3) == bootstrap_interval([1, 0, 1], seed=3)
    assert np.isnan(bootstrap_interval([])[0])
    d = paired_difference([1, 1, 0, 1], [1, 1, 0, 1])
    assert d == {"difference": 0.0, "low": 0.0, "high": 0.0}
    d = paired_difference([1] * 30 + [0] * 10, [0] * 40)
    assert d["difference"] == 0.75 and 0.6 < d["low"] < 0.75 < d["high"] < 0.9
    with pytest.raises(ValueError, match="same users"):
        paired_difference([1, 0], [1])


def test_results_carry_intervals():
    import numpy as np

    from allmrec.evaluation.results import build_results

    r = build_results(model="m", model_type="sasrec", dataset="d", split="test",
                      per_user={"hit@1": np.array([1.0, 0.0, 1.0, 1.0])}, scenarios=["warm"] * 4, candidate_fingerprint="x")
    lo, hi = r["intervals"]["hit@1"]
    assert 0.0 <= lo <= r["metrics"]["hit@1"] <= hi <= 1.0
