"""`allmrec evaluate`: stored candidates only, schema, dispatch on model_type."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
import torch
from torch import nn

from allmrec.cli import main
from allmrec.data.dataset import PreparedDataset
from allmrec.errors import AllmrecError, CheckpointError
from allmrec.evaluation.cf_evaluator import evaluate_cf_model


@pytest.fixture(scope="module")
def trained_sasrec(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "sasrec"
    assert main(["train", "cf", "--data", str(tiny_data), "--model", "sasrec", "--out", str(out), "--epochs", "2",
                 "--hidden-size", "16", "--maxlen", "10", "--no-progress"]) == 0
    return out


class ItemIdScorer(nn.Module):
    """A fake CF model whose score for an item is its id: the expected ranks follow from the
    stored candidates alone, so any re-drawn candidate would change the metrics."""

    def __init__(self, num_items: int):
        super().__init__()
        self.config = types.SimpleNamespace(maxlen=5, num_items=num_items, model_type="fake", loss_type=None)
        self.dummy = nn.Parameter(torch.zeros(1))

    @property
    def device(self):
        return self.dummy.device

    def score(self, item_seq, items, user_ids=None):
        return items.float()

    def score_all_items(self, item_seq, user_ids=None):
        return torch.arange(self.config.num_items + 1).float().expand(item_seq.shape[0], -1)


def test_evaluation_uses_exactly_the_stored_candidates(tiny_data, monkeypatch):
    ds = PreparedDataset.load(tiny_data)
    rows = ds.eval_rows("test")

    # Any attempt to draw random numbers during evaluation fails the test (the results' bootstrap intervals use their
    # own explicitly seeded PCG64 generator after scoring, see allmrec.evaluation.statistics).
    def forbidden(*a, **k):
        raise AssertionError("evaluation must not draw random numbers")

    for name in ("default_rng", "randint", "choice", "permutation", "shuffle", "random"):
        monkeypatch.setattr(np.random, name, forbidden)
    for name in ("randint", "randperm", "rand", "randn", "multinomial"):
        monkeypatch.setattr(torch, name, forbidden)

    res = evaluate_cf_model(ItemIdScorer(ds.num_items), ds, split="test", full_ranking=True, progress=False)
    expected_ranks = (rows["candidates"] >= rows["target"][:, None]).sum(1) - 1
    assert res["metrics"]["hit@1"] == pytest.approx(np.mean(expected_ranks == 0))
    assert res["metrics"]["mrr"] == pytest.approx(np.mean(1 / (expected_ranks + 1)))
    assert res["candidate_fingerprint"] == ds.candidate_fingerprint("test")
    # full ranking by hand: items with a larger id that are not in the history
    full = [sum(1 for i in range(t + 1, ds.num_items + 1) if i not in set(h)) for t, h in zip(rows["target"], rows["history"])]
    assert res["metrics"]["full_hr@10"] == pytest.approx(np.mean(np.array(full) < 10))
    assert res["n_users"] == len(rows["user_id"])
    assert sum(s["n_users"] for s in res["scenarios"].values()) == res["n_users"]


def test_cli_evaluate_writes_the_schema(trained_sasrec, tiny_data, tmp_path, capsys):
    out = tmp_path / "results.json"
    rc = main(["evaluate", "--model", str(trained_sasrec), "--data", str(tiny_data), "--out", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    ds = PreparedDataset.load(tiny_data)
    assert res["model_type"] == "sasrec" and res["split"] == "test" and res["dataset"] == "tiny"
    assert res["n_users"] == len(ds.split("test"))
    assert set(res["metrics"]) >= {"hit@1", "hit@5", "hit@10", "ndcg@10", "mrr", "full_hr@10", "full_ndcg@10"}
    assert set(res["scenarios"]) == {"warm", "mid", "cold"}
    assert res["candidate_fingerprint"] == ds.candidate_fingerprint("test")
    assert "evaluate" in res["command"] and "scoring" in res["timings"]
    printed = capsys.readouterr().out
    assert "overall" in printed and "hit@1" in printed


def test_cli_evaluate_cold_users_and_valid(trained_sasrec, tiny_data, tmp_path):
    out = tmp_path / "cold.json"
    assert main(["evaluate", "--model", str(trained_sasrec), "--data", str(tiny_data), "--split", "cold_user_test",
                 "--out", str(out), "--no-full-ranking"]) == 0
    res = json.loads(out.read_text())
    assert list(res["scenarios"]) == ["cold_user"] and res["n_users"] == 5
    assert "full_hr@10" not in res["metrics"]
    out = tmp_path / "valid.json"
    assert main(["evaluate", "--model", str(trained_sasrec), "--data", str(tiny_data), "--split", "valid", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["candidate_fingerprint"] == PreparedDataset.load(tiny_data).candidate_fingerprint("valid")


def test_ncf_evaluates_cold_users_without_crashing(tiny_data, tmp_path):
    ckpt = tmp_path / "ncf"
    assert main(["train", "cf", "--data", str(tiny_data), "--model", "ncf", "--out", str(ckpt), "--epochs", "1",
                 "--hidden-size", "8", "--no-progress"]) == 0
    out = tmp_path / "r.json"
    assert main(["evaluate", "--model", str(ckpt), "--data", str(tiny_data), "--split", "cold_user_test", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["n_users"] == 5


def test_empty_split_is_a_clear_error(trained_sasrec, tiny_data, tmp_path, monkeypatch):
    from allmrec.evaluation import cf_evaluator

    ds = PreparedDataset.load(tiny_data)
    empty = {k: (v[:0] if isinstance(v, np.ndarray) else v[:0]) for k, v in ds.eval_rows("test").items()}
    monkeypatch.setattr(PreparedDataset, "eval_rows", lambda self, split="test": empty)
    with pytest.raises(AllmrecError, match="no rows"):
        cf_evaluator.evaluate_cf_model(ItemIdScorer(ds.num_items), ds, progress=False)


def test_dispatch_errors(tmp_path, tiny_data):
    from allmrec.evaluation.cli import checkpoint_kind

    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint_kind(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        checkpoint_kind(tmp_path / "empty")
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(CheckpointError, match="unknown model_type"):
        checkpoint_kind(tmp_path / "odd")
    # through the CLI: one-line error, exit status 2
    for ckpt in ("missing", "empty", "odd"):
        assert main(["evaluate", "--model", str(tmp_path / ckpt), "--data", str(tiny_data), "--out", str(tmp_path / "r.json")]) == 2


def test_dispatch_to_allmrec_and_tallrec_evaluators(tmp_path, tiny_data, monkeypatch, capsys):
    calls = []

    def fake_evaluate(args):
        calls.append(args)
        return {"model": args.model, "model_type": "allmrec", "dataset": "tiny", "split": args.split, "n_users": 1,
                "metrics": {"hit@1": 1.0}, "scenarios": {}, "candidate_fingerprint": "f"}

    for module in ("allmrec.model.inference", "allmrec.baselines.evaluate"):
        monkeypatch.setitem(sys.modules, module, types.SimpleNamespace(evaluate_checkpoint=fake_evaluate))
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "config.json").write_text(json.dumps({"model_type": "allmrec"}))
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "adapter_config.json").write_text("{}")
    for ckpt in ("a", "t"):
        out = tmp_path / f"{ckpt}.json"
        assert main(["evaluate", "--model", str(tmp_path / ckpt), "--data", str(tiny_data), "--out", str(out),
                     "--mode", "rank", "--item-embedding", "text"]) == 0
        assert json.loads(out.read_text())["metrics"] == {"hit@1": 1.0}
    assert [c.mode for c in calls] == ["rank", "rank"] and calls[0].item_embedding == "text"
    # evaluator missing from the install → one-line error, exit 2
    monkeypatch.setitem(sys.modules, "allmrec.model.inference", None)
    assert main(["evaluate", "--model", str(tmp_path / "a"), "--data", str(tiny_data), "--out", str(tmp_path / "x.json")]) == 2
    assert "not available" in capsys.readouterr().err


def test_dataset_mismatch_is_refused(tmp_path, tiny_data):
    from allmrec.cf import SASRecConfig, SASRecModel

    SASRecModel(SASRecConfig(num_items=7, hidden_size=8)).save_pretrained(tmp_path / "m")
    assert main(["evaluate", "--model", str(tmp_path / "m"), "--data", str(tiny_data), "--out", str(tmp_path / "r.json")]) == 2


def test_users_without_test_rows_are_not_counted(tiny_data, monkeypatch):
    # Users with fewer than 3 interactions have no test row; simulate that by dropping every
    # other row: the averages must be over the remaining users only (no zero-filled users).
    ds = PreparedDataset.load(tiny_data)
    full = ds.eval_rows("test")
    keep = np.arange(len(full["user_id"])) % 2 == 0
    part = {k: (v[keep] if isinstance(v, np.ndarray) else [x for x, k_ in zip(v, keep) if k_]) for k, v in full.items()}
    monkeypatch.setattr(PreparedDataset, "eval_rows", lambda self, split="test": part)
    res = evaluate_cf_model(ItemIdScorer(ds.num_items), ds, full_ranking=False, progress=False)
    ranks = (part["candidates"] >= part["target"][:, None]).sum(1) - 1
    assert res["n_users"] == int(keep.sum())
    assert res["metrics"]["hit@5"] == pytest.approx(np.mean(ranks < 5))
    for name, block in res["scenarios"].items():
        mask = np.array(part["scenario"]) == name
        assert block["n_users"] == int(mask.sum())
        if mask.any():
            assert block["metrics"]["mrr"] == pytest.approx(np.mean(1 / (ranks[mask] + 1)))


def test_most_popular_matches_a_hand_ranking_by_training_counts(tiny_data, tmp_path, capsys):
    ds = PreparedDataset.load(tiny_data)
    rows = ds.eval_rows("test")
    counts = ds.item_popularity[np.asarray(rows["candidates"])]
    # pessimistic ties, by hand: a tied candidate counts as ranked above the target
    ti = np.asarray(rows["target_index"])
    t = counts[np.arange(len(ti)), ti]
    by_hand = ((counts > t[:, None]).sum(1) + (counts == t[:, None]).sum(1) - 1 == 0).mean()
    out = tmp_path / "pop.json"
    assert main(["evaluate", "--model", "pop", "--data", str(tiny_data), "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["model_type"] == "pop" and r["n_users"] == len(ti)
    assert r["metrics"]["hit@1"] == pytest.approx(by_hand)
    # the user is never read: shuffling users changes nothing for MostPop
    shuffled = tmp_path / "pop_shuffled.json"
    assert main(["evaluate", "--model", "pop", "--data", str(tiny_data), "--out", str(shuffled), "--ablate", "shuffle-users"]) == 0
    s = json.loads(shuffled.read_text())
    assert s["metrics"]["hit@1"] == r["metrics"]["hit@1"] and s["ablation"] == {"kind": "shuffle-users", "seed": 0}
    assert main(["evaluate", "--model", "pop", "--data", str(tiny_data), "--out", str(tmp_path / "x.json"), "--ablate", "shuffle-items"]) != 0
    assert "shuffle-users or shuffle-history" in capsys.readouterr().err


def test_cf_shuffle_users_scores_another_users_history(tiny_data):
    """The ablation feeds user j's history to the model for user i (a derangement), targets unchanged."""
    from allmrec.evaluation.subsets import derangement

    class LastItemScorer(ItemIdScorer):  # the score of a candidate is 1 if it equals the last history item + 1
        def score(self, item_seq, items, user_ids=None):
            return (items == item_seq[:, -1:] + 1).float()

    ds = PreparedDataset.load(tiny_data)
    model = LastItemScorer(ds.num_items)
    rows = ds.eval_rows("test")
    intact = evaluate_cf_model(model, ds, full_ranking=False, progress=False)
    shuffled = evaluate_cf_model(model, ds, full_ranking=False, progress=False, ablate="shuffle-users")
    perm = derangement(len(rows["user_id"]), 0)
    last = np.array([h[-1] for h in rows["history"]])
    cands, ti = np.asarray(rows["candidates"]), np.asarray(rows["target_index"])

    def expected(last_items):  # rank 0 only when the target is the single candidate scored 1
        hit = cands == (last_items + 1)[:, None]
        return (hit[np.arange(len(ti)), ti] & (hit.sum(1) == 1)).mean()

    assert intact["metrics"]["hit@1"] == pytest.approx(expected(last))
    assert shuffled["metrics"]["hit@1"] == pytest.approx(expected(last[perm]))
    assert "full_hr@10" not in shuffled["metrics"]
    assert shuffled["ablation"]["kind"] == "shuffle-users"


def test_cf_shuffle_history_permutes_each_users_own_history(tiny_data):
    """--ablate shuffle-history: every user keeps their own items in a seeded order that depends only on (seed,
    user id), so an order-aware scorer changes while the full-ranking history mask still holds."""
    from allmrec.evaluation.subsets import shuffle_history_rows

    class LastItemScorer(ItemIdScorer):
        def score(self, item_seq, items, user_ids=None):
            return (items == item_seq[:, -1:] + 1).float()

    ds = PreparedDataset.load(tiny_data)
    rows = ds.eval_rows("test")
    out = shuffle_history_rows(rows, seed=0)
    assert all(sorted(a) == sorted(b) for a, b in zip(out["history"], rows["history"]))
    assert any(list(a) != list(b) for a, b in zip(out["history"], rows["history"]))
    again = shuffle_history_rows({k: v[::-1] for k, v in rows.items()}, seed=0)  # per user, not per position
    assert all(list(a) == list(b) for a, b in zip(again["history"][::-1], out["history"]))
    model = LastItemScorer(ds.num_items)
    shuffled = evaluate_cf_model(model, ds, progress=False, ablate="shuffle-history")
    cands, ti = np.asarray(rows["candidates"]), np.asarray(rows["target_index"])
    last = np.array([h[-1] for h in out["history"]])
    hit = cands == (last + 1)[:, None]
    assert shuffled["metrics"]["hit@1"] == pytest.approx((hit[np.arange(len(ti)), ti] & (hit.sum(1) == 1)).mean())
    assert shuffled["ablation"]["kind"] == "shuffle-history" and "full_hr@10" in shuffled["metrics"]
