"""``allmrec reproduce``: the plan covers every table, a tiny end-to-end run writes every table, a killed run
resumes without redoing finished cells, and the statistics / genre scores match hand computations."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from allmrec.evaluation.genres import genre_scores, item_genres, named_genres, user_top_genres
from allmrec.evaluation.statistics import bootstrap_interval, paired_results_difference
from allmrec.reproduce import TABLES, build_plan, get_budget
from allmrec.reproduce.report import write_report
from allmrec.reproduce.runner import KILL_AT_STEP_ENV, format_plan, is_done, remaining_seconds, run_plan

#: everything as small as it goes: one epoch / step per training, 6 users per cell
TINY = "cf_epochs=1,stage1_epochs=1,stage1_sbert_layers=0,stage2_steps=1,tallrec_steps=1,eval_users=6,genre_users=3,lora_rank=2"


@pytest.fixture(scope="module")
def second_domain(tmp_path_factory):
    """A second prepared fixture dataset (other items and users) for the cross-domain table."""
    from allmrec.data.prepare import PrepareOptions, prepare
    from conftest import write_tiny_recbole

    root = tmp_path_factory.mktemp("tiny2")
    src = write_tiny_recbole(root / "raw", n_users=40, n_items=40, n_cold_users=0, seed=3)
    prepare(PrepareOptions(source=str(src), name="tiny2", domain="movie", few_shot=(8,)), root / "prepared", progress=False)
    return root / "prepared"


def _plan(data, llm, sbert, tables=TABLES, budget="demo", overrides=TINY, cross_domain=None):
    return build_plan(str(data), get_budget(budget, overrides), tuple(tables), llm=str(llm), sbert=str(sbert),
                      cross_domain=None if cross_domain is None else str(cross_domain))


def test_plan_covers_every_table_and_shares_steps(stage2_inputs, tiny_sbert_path, second_domain, tmp_path):
    data, _, llm = stage2_inputs
    plan = _plan(data, llm, tiny_sbert_path, cross_domain=second_domain)
    assert [t.key for t in plan.tables] == list(TABLES)
    assert all(t.rows and not t.not_applicable for t in plan.tables), [(t.key, t.not_applicable) for t in plan.tables]
    ids = [s.id for s in plan.steps]
    assert len(ids) == len(set(ids))  # SASRec, stage 1 and A-LLMRec are planned once, read by many tables
    assert ids.count("train/cf-sasrec") == 1
    order = {s: k for k, s in enumerate(ids)}
    for s in plan.steps:  # every step comes after what it reads
        assert all(order[d] < order[s.id] for d in s.needs), s.id
    for t in plan.tables:  # every cell names a planned step
        assert all(sid in order for row in t.rows for sid in row.results.values())
    table1 = {row.label for row in plan.tables[0].rows}
    assert {"MostPop", "SASRec", "SASRec (CE)", "LLM-Only", "TALLRec", "MLP-LLM", "A-LLMRec", "A-LLMRec (SBERT)", "A-LLMRec_all",
            "A-LLMRec (paper recipe)", "NCF", "NextItNet", "GRU4Rec", "A-LLMRec + LoRA"} <= table1
    listing = format_plan(plan, tmp_path)
    assert f"{len(ids)} steps" in listing and "estimated time left" in listing
    assert "allmrec train stage2" in listing and "--few-shot 8" in listing and "--soft-tokens items" in listing


def test_plan_says_why_a_table_does_not_apply(ml100k_data, tmp_path):
    plan = build_plan(str(ml100k_data), get_budget("cpu"), ("1", "5", "7", "fig4"))
    na = {t.key: t.not_applicable for t in plan.tables}
    assert "no cold user" in na["5"] and "--cross-domain" in na["7"]
    assert na["1"] is None and na["fig4"] is None  # ml-100k descriptions are genre labels


def test_cpu_budget_trains_a_llmrec_and_mlp_llm_with_one_recipe_and_keeps_the_paper_row(ml100k_data):
    from allmrec.errors import AllmrecError
    from allmrec.reproduce.plan import recipe_of

    plan = build_plan(str(ml100k_data), get_budget("cpu"), ("1", "fig4"))
    train = {s.id: s for s in plan.steps if s.kind == "train"}
    assert recipe_of(train["train/s2-sasrec"].argv) == "index-lora" == recipe_of(train["train/mlpllm"].argv)
    assert recipe_of(train["train/s2-sasrec-paper"].argv) == "paper"  # the row's own recipe replaces the budget's
    assert train["train/s2-sasrec-paper"].argv.count("--recipe") == 1
    steps = {sid: s.argv[s.argv.index("--max-steps") + 1] for sid, s in train.items() if "--max-steps" in s.argv}
    assert steps["train/s2-sasrec"] == steps["train/mlpllm"] == steps["train/tallrec"] == "60"  # the same budget
    assert "A-LLMRec + LoRA" not in {row.label for row in plan.tables[0].rows}  # index-lora already has LoRA
    fig4 = {row.label: row.results["genres"] for row in plan.tables[1].rows}
    # index-lora answers with labels, so Figure 4 also asks the paper-recipe model (frozen LLM), as the paper does
    assert plan.step(fig4["A-LLMRec (paper recipe)"]).needs == ["train/s2-sasrec-paper"]
    assert plan.step(fig4["A-LLMRec"]).needs == ["train/s2-sasrec"]
    index_eval = plan.step("eval/s2-sasrec.rank").estimate_s
    assert index_eval < plan.step("eval/s2-sasrec-paper.rank").estimate_s  # one forward pass per user
    lean = build_plan(str(ml100k_data), get_budget("cpu", "all_targets=false"), ("1",))
    assert "A-LLMRec_all" not in {row.label for row in lean.tables[0].rows}  # the costliest row, off on request
    assert not any("--all-items" in s.argv or "--targets" in s.argv for s in lean.steps)
    with pytest.raises(AllmrecError, match="stage2_recipe"):
        get_budget("cpu", "stage2_recipe=Index-LoRA")  # refused at planning, not hours later by train stage2
    assert get_budget("cpu", "stage2_recipe=listwise").stage2_recipe == "listwise"


def test_budget_overrides_are_validated():
    from allmrec.errors import AllmrecError

    assert get_budget("demo", "eval_users=9,generate=true").eval_users == 9
    assert get_budget("cpu").all_targets and not get_budget("cpu", "all_targets=false").all_targets
    for bad in ("nope=1", "eval_users=x", "eval_users", "stage2_steps=-1"):
        with pytest.raises(AllmrecError):
            get_budget("demo", bad)


def test_tiny_end_to_end_run_writes_every_table(stage2_inputs, tiny_sbert_path, second_domain, tmp_path):
    data, _, llm = stage2_inputs
    plan = _plan(data, llm, tiny_sbert_path, cross_domain=second_domain)
    root = tmp_path / "R"
    summary = run_plan(plan, root)
    assert len(summary["ran"]) == len(plan.steps) and all(is_done(root, s) for s in plan.steps)
    md, page = write_report(plan, root, command="allmrec reproduce (test)")
    text = md.read_text()
    for t in plan.tables:
        assert t.title in text
    rows = [line for line in text.split("## Table 10")[0].splitlines() if line.startswith("| ")]
    assert rows and not [r for r in rows if "| — |" in r or r.endswith("| — |")], rows  # every Hit@k cell is filled
    assert "±" in text and "Δ Hit@1 vs A-LLMRec" in text and "**" in text
    assert "figures/cold_warm.png" in text and (root / "figures" / "cold_warm.png").is_file()
    html = page.read_text()
    assert html.startswith("<!doctype html>") and "data:image/png;base64," in html and "<table>" in html
    # the same command again runs nothing
    again = run_plan(plan, root)
    assert again["ran"] == [] and len(again["skipped"]) == len(plan.steps)
    s1_log = json.loads((root / "training_logs" / "s1-sasrec.json").read_text())
    assert s1_log["command"].startswith("allmrec train stage1 "), s1_log["command"]  # not "allmrec reproduce"
    # a folder kept without its checkpoints (R/work/ is not in git): still done, and the report keeps Table 10
    table10 = text.split("## Table 10")[1].split("\n## ")[0]
    shutil.rmtree(root / "work")
    assert run_plan(plan, root)["ran"] == []
    md, _ = write_report(plan, root, command="allmrec reproduce (test)")
    assert md.read_text().split("## Table 10")[1].split("\n## ")[0] == table10
    # a lost results file reruns its cell and the trainings it reads, nothing else
    cell = plan.step("eval/s2-sasrec-noitem.rank")
    (root / cell.output).unlink()
    rerun = run_plan(plan, root)["ran"]
    assert rerun == ["train/cf-sasrec", "train/s1-sasrec", "train/s2-sasrec-noitem", cell.id], rerun


def test_killed_run_resumes_without_redoing_finished_cells(stage2_inputs, tiny_sbert_path, tmp_path):
    data, _, llm = stage2_inputs
    root = tmp_path / "R"
    argv = [sys.executable, "-m", "allmrec", "reproduce", "--data", str(data), "--out", str(root), "--budget", "demo",
            "--tables", "9", "--set", TINY, "--llm", str(llm), "--sbert", tiny_sbert_path]
    plan = _plan(data, llm, tiny_sbert_path, tables=("9",))
    assert plan.steps[2].id == "train/s2-sasrec"  # the step the hook kills: after SASRec and stage 1 finished
    env = dict(os.environ, **{KILL_AT_STEP_ENV: "3"})
    killed = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode != 0, killed.stdout[-2000:] + killed.stderr[-2000:]
    assert [is_done(root, s) for s in plan.steps[:3]] == [True, True, False]
    finished = {s.id: (root / "done" / (s.id.replace("/", "__") + ".json")).stat().st_mtime_ns for s in plan.steps[:2]}
    resumed = subprocess.run(argv, env=dict(os.environ), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert all(is_done(root, s) for s in plan.steps)
    for sid, mtime in finished.items():  # finished cells were not redone
        assert (root / "done" / (sid.replace("/", "__") + ".json")).stat().st_mtime_ns == mtime
    assert resumed.stdout.count("] done  ") == 2
    assert "Table 9" in (root / "report.md").read_text()


def test_remaining_time_rescales_each_rate_by_its_own_measured_ratio():
    from allmrec.reproduce.plan import Step

    genres = Step("genres/a", "genres", "genres", ["genres", "--model", "m"], "results/a.json", estimate_s=100.0,
                  rate="genre_user")
    stage2 = Step("train/s2", "train", "stage 2", ["train", "stage2", "--out", "x"], "work/s2", estimate_s=600.0,
                  rate="stage2_step_index")
    cf = Step("train/cf", "train", "cf", ["train", "cf", "--out", "y"], "work/cf", estimate_s=50.0, rate="cf_epoch")
    # genre cells ran 4x faster than estimated, stage 2 2x slower; nothing is known about CF training yet
    spent, estimated = {"genre_user": 25.0, "stage2_step_index": 1200.0}, {"genre_user": 100.0, "stage2_step_index": 600.0}
    assert remaining_seconds([genres, stage2, cf], spent, estimated) == pytest.approx(25.0 + 1200.0 + 50.0)
    assert remaining_seconds([stage2], {}, {}) == 600.0  # nothing measured: the plan's estimate


def test_the_plan_gives_each_recipe_and_answer_form_its_own_rate(stage2_inputs, tiny_sbert_path):
    # machines differ in what they are slow at: the paper recipe's token loss ran 3.8x its estimate where
    # index-lora ran 1.4x, and title answers (20 packed candidates) are not one-label answers (one forward pass)
    data, _, llm = stage2_inputs
    plan = _plan(data, llm, tiny_sbert_path, tables=("1",), overrides=TINY + ",stage2_recipe=index-lora,generate=true")
    rates = {s.id: s.rate for s in plan.steps}
    assert all(rates.values()), [sid for sid, r in rates.items() if not r]
    assert rates["train/s2-sasrec"] == "stage2_step_index" != rates["train/s2-sasrec-paper"] == "stage2_step_token"
    assert rates["eval/s2-sasrec.rank"] == "rank_user_index" != rates["eval/s2-sasrec-paper.rank"] == "rank_user"
    assert rates["eval/tallrec.generate"] == "generate_user" and rates["train/tallrec"] == "tallrec_step"


def test_a_resumed_training_is_measured_on_what_it_ran(tmp_path):
    from allmrec.reproduce.plan import Plan, Step
    from allmrec.reproduce.runner import _measured
    from allmrec.training.checkpointing import STATE_FILE

    paper = Step("train/b", "train", "b", ["train", "stage2", "--recipe", "paper", "--max-steps", "400",
                                          "--save-state-every", "100"], "work/b", estimate_s=400.0, rate="stage2_step_token")
    # index-lora ran at its estimate; the paper recipe's ratio is not index-lora's
    spent, estimated = {"stage2_step_index": 100.0}, {"stage2_step_index": 100.0}
    assert remaining_seconds([paper], spent, estimated) == 400.0

    # the paper training resumes from step 300 of 400: the marker compares its seconds with the last quarter
    state = tmp_path / "work" / "b-state" / "step-00000300"
    state.mkdir(parents=True)
    (state / STATE_FILE).write_text("{}")

    def runner(argv):
        assert "--resume-from" in argv
        (tmp_path / "work" / "b").mkdir()
        return 0

    plan = Plan(data="d", budget=get_budget("demo"), llm="l", sbert="s", seed=0, steps=[paper], tables=[])
    run_plan(plan, tmp_path, runner=runner, echo=lambda *_: None)
    marker = json.loads((tmp_path / "done" / "train__b.json").read_text())
    assert marker["estimate_s"] == 100.0
    spent, estimated = _measured(tmp_path, plan)
    assert estimated == {"stage2_step_token": 100.0} and spent["stage2_step_token"] == marker["seconds"]


def test_a_folder_of_another_plan_is_refused(stage2_inputs, tiny_sbert_path, tmp_path):
    from allmrec.errors import AllmrecError
    from allmrec.reproduce.runner import check_identity

    data, _, llm = stage2_inputs
    check_identity(_plan(data, llm, tiny_sbert_path, tables=("9",)), tmp_path)
    with pytest.raises(AllmrecError, match="different budget"):
        check_identity(_plan(data, llm, tiny_sbert_path, tables=("9",), overrides=TINY + ",eval_users=7"), tmp_path)
    # a folder planned before a budget field existed (its default is what that run did) stays this plan's folder
    stored = json.loads((tmp_path / "plan.json").read_text())
    del stored["budget"]["all_targets"]
    (tmp_path / "plan.json").write_text(json.dumps(stored))
    check_identity(_plan(data, llm, tiny_sbert_path, tables=("9",)), tmp_path)
    stored["budget"]["all_targets"] = False
    (tmp_path / "plan.json").write_text(json.dumps(stored))
    with pytest.raises(AllmrecError, match="different budget"):
        check_identity(_plan(data, llm, tiny_sbert_path, tables=("9",)), tmp_path)


# ---------------------------------------------------------------------------------------------- statistics
def test_bootstrap_interval_matches_a_hand_computation():
    values = [1.0, 0.0, 0.0, 1.0, 1.0]
    idx = np.random.default_rng(0).integers(0, 5, size=(1000, 5))  # the documented resampling: default_rng(seed)
    means = np.asarray(values)[idx].mean(axis=1)
    assert bootstrap_interval(values) == pytest.approx((np.quantile(means, 0.025), np.quantile(means, 0.975)))


def test_paired_difference_aligns_users_and_refuses_other_candidates():
    a = {"model": "a", "candidate_fingerprint": "f", "per_user": {"user_id": [1, 2, 3, 4], "hit@1": [1, 1, 0, 1]}}
    b = {"model": "b", "candidate_fingerprint": "f", "per_user": {"user_id": [4, 3, 2, 9], "hit@1": [0, 0, 1, 1]}}
    d = paired_results_difference(a, b)
    # shared users 2, 3, 4: a = 1, 0, 1; b = 1, 0, 0 → differences 0, 0, 1
    idx = np.random.default_rng(0).integers(0, 3, size=(1000, 3))
    diffs = np.asarray([0.0, 0.0, 1.0])[idx].mean(axis=1)
    assert d["n_users"] == 3 and d["difference"] == pytest.approx(1 / 3)
    assert (d["low"], d["high"]) == pytest.approx((np.quantile(diffs, 0.025), np.quantile(diffs, 0.975)))
    with pytest.raises(ValueError, match="different candidates"):
        paired_results_difference(a, dict(b, candidate_fingerprint="g"))


# ---------------------------------------------------------------------------------------------- genres
def test_genre_scores_match_hand_computed_values():
    genres = item_genres(["", "Title: A, Description: Comedy, Drama", "Title: B, Description: Film-Noir, Crime",
                          "Title: C, Description: Drama", "Title: D, Description: Sci-Fi, Action"])
    assert user_top_genres([1, 3, 2, 4, 3], genres) == ["Drama", "Action", "Comedy"]  # 3, then 1-1-1-1 alphabetical
    assert named_genres("film-noir? No: DRAMA, then Film-Noir and sci-fi", sorted({g for x in genres for g in x})) == [
        "Film-Noir", "Drama", "Sci-Fi"]
    outputs = ["Drama, Comedy and Horror", "Crime", "no idea", "Action, Drama, Comedy, Crime"]
    histories = [[1, 3], [2], [1], [4, 3, 3]]
    s = genre_scores(outputs, histories, genres)
    # user 1: top {Drama, Comedy}, named [Drama, Comedy] (Horror is no label) → P 2/2, R 2/2
    # user 2: top {Crime, Film-Noir}, named [Crime] → P 1/1, R 1/2
    # user 3: named nothing → P 0, R 0, invalid
    # user 4: top {Drama, Action, Sci-Fi}, named first 3 [Action, Drama, Comedy] → P 2/3, R 2/3
    assert s["precision@3"].tolist() == pytest.approx([1.0, 1.0, 0.0, 2 / 3])
    assert s["recall@3"].tolist() == pytest.approx([1.0, 0.5, 0.0, 2 / 3])
    assert s["valid"].tolist() == [1.0, 1.0, 0.0, 1.0]


def test_genre_task_refuses_free_text_descriptions():
    from allmrec.errors import DataError
    from allmrec.evaluation.genres import check_genre_labels

    with pytest.raises(DataError, match="free text"):
        check_genre_labels(item_genres(["", "Title: X, Description: a long blurb about this lovely blender"]), "d")


def test_help_lists_every_budget_field_with_each_budgets_value():
    from dataclasses import fields

    from allmrec.reproduce.budgets import ReproduceBudget
    from allmrec.reproduce.cli import _budget_fields_help

    lines = {line.split()[0]: line for line in _budget_fields_help().splitlines()[1:]}
    assert set(lines) == {f.name for f in fields(ReproduceBudget)} - {"name"}
    assert lines["stage2_recipe"].endswith("[index-lora / index-lora / index-lora]")
    assert lines["eval_users"].endswith("[20 / 200 / 0]")


def _time_limited_plan(tmp_path, monkeypatch, specs):
    """A plan of fake steps (id, argv head, estimate, needs) whose runner advances a fake clock by the estimate.

    The clock makes each decision depend on the plan's numbers only: a real step takes its estimate exactly, so
    every kind's measured/estimated ratio stays 1.
    """
    import time as real_time
    from types import SimpleNamespace

    import allmrec.reproduce.runner as runner_module
    from allmrec.reproduce.plan import Plan, Step

    clock = [0.0]
    monkeypatch.setattr(runner_module, "time", SimpleNamespace(perf_counter=lambda: clock[0], strftime=real_time.strftime,
                                                               gmtime=real_time.gmtime))
    steps = []
    for sid, head, est, needs in specs:
        kind = "train" if head[0] == "train" else "evaluate"
        out = ("work/" if kind == "train" else "results/") + sid.split("/")[1] + ("" if kind == "train" else ".json")
        steps.append(Step(sid, kind, sid, [*head, "--out", sid], out, list(needs), est))
    plan = Plan(data="d", budget=get_budget("demo"), llm="l", sbert="s", seed=0, steps=steps, tables=[])
    root = tmp_path / "R"
    calls = []

    def fake(argv):  # writes the step's output, as the real command does, and takes its estimate
        s = next(s for s in steps if s.argv == argv)
        calls.append(s.id)
        clock[0] += s.estimate_s
        out = root / s.output
        out.parent.mkdir(parents=True, exist_ok=True)
        out.mkdir() if s.kind == "train" else out.write_text("{}")
        return 0

    return plan, root, fake, calls


def test_time_limit_defers_a_training_whose_readers_do_not_fit_and_runs_cheaper_steps(tmp_path, monkeypatch):
    plan, root, fake, calls = _time_limited_plan(tmp_path, monkeypatch, [
        ("train/small", ["train", "cf"], 60.0, ()), ("eval/small", ["evaluate"], 60.0, ["train/small"]),
        ("train/big", ["train", "stage2"], 100.0, ()),
        ("eval/big.rank", ["evaluate", "--mode", "rank"], 50.0, ["train/big"]),
        ("eval/big.gen", ["evaluate", "--mode", "generate"], 50.0, ["train/big"]),
        ("eval/alone", ["evaluate", "--mode", "text"], 5.0, ())])
    lines = []
    # big + its readers (200 s) fit a 250 s window but not the 130 s left after the small model
    first = run_plan(plan, root, runner=fake, echo=lines.append, time_limit_s=250.0)
    assert first["deferred"] == ["train/big", "eval/big.rank", "eval/big.gen"]
    assert calls == ["train/small", "eval/small", "eval/alone"] == first["ran"]
    assert "3 deferred" in lines[-1] and "run the same command again" in lines[-1]
    assert not any("longer than the whole" in line for line in lines)
    calls.clear()
    second = run_plan(plan, root, runner=fake, echo=lines.append, time_limit_s=250.0)
    assert calls == ["train/big", "eval/big.rank", "eval/big.gen"] and second["deferred"] == []
    assert all(is_done(root, s, plan) for s in plan.steps)


def test_time_limit_splits_a_training_whose_readers_never_fit_one_window(tmp_path, monkeypatch):
    import shutil

    plan, root, fake, calls = _time_limited_plan(tmp_path, monkeypatch, [
        ("train/big", ["train", "stage2"], 100.0, ()),
        ("eval/big.rank", ["evaluate", "--mode", "rank"], 50.0, ["train/big"]),
        ("eval/big.gen", ["evaluate", "--mode", "generate"], 50.0, ["train/big"]),
        ("train/huge", ["train", "tallrec"], 200.0, ()), ("eval/huge", ["evaluate"], 10.0, ["train/huge"])])
    lines = []
    # big + both readers (200 s) never fit 150 s: the training runs with the reader that fits beside it
    first = run_plan(plan, root, runner=fake, echo=lines.append, time_limit_s=150.0)
    assert calls == ["train/big", "eval/big.rank"] and first["deferred"] == ["eval/big.gen", "train/huge", "eval/huge"]
    # a training longer than the window alone is never started, and says what to do
    assert any("train/huge" in line and "give a longer one" in line for line in lines)
    shutil.rmtree(root / "work")  # the next job window: the checkpoint is gone, so the training runs again
    calls.clear()
    run_plan(plan, root, runner=fake, echo=lines.append, time_limit_s=150.0)
    assert calls == ["train/big", "eval/big.gen"]


def test_time_limit_parses_units_and_refuses_nonsense():
    from allmrec.errors import AllmrecError
    from allmrec.reproduce.runner import parse_time_limit

    assert parse_time_limit("2h30m") == 9000.0 and parse_time_limit("90m") == 5400.0
    assert parse_time_limit("45s") == 45.0 and parse_time_limit("150") == 9000.0
    for bad in ("", "soon", "2x", "0m", "h"):
        with pytest.raises(AllmrecError, match="--time-limit"):
            parse_time_limit(bad)


def test_a_saved_training_state_shortens_the_estimate_it_resumes_from(tmp_path):
    from allmrec.reproduce.plan import Step
    from allmrec.reproduce.runner import trained_fraction
    from allmrec.training.checkpointing import STATE_FILE

    step = Step("train/s2", "train", "stage 2", ["train", "stage2", "--max-steps", "480"], "work/s2", estimate_s=600.0)
    assert trained_fraction(step, tmp_path) == 0.0
    for n, complete in ((120, True), (200, False)):  # a state without its state file was cut short: not counted
        d = tmp_path / "work" / "s2-state" / f"step-{n:08d}"
        d.mkdir(parents=True)
        if complete:
            (d / STATE_FILE).write_text("{}")
    assert trained_fraction(step, tmp_path) == 0.25


def test_report_names_cells_scored_on_an_earlier_training_of_the_same_command(tmp_path):
    from allmrec.reproduce.plan import Plan, Step
    from allmrec.reproduce.report import scored_on_earlier_training
    from allmrec.reproduce.runner import marker_path

    train = Step("train/m", "train", "m", ["train", "stage2"], "work/m", [], 1.0)
    old, new = (Step(f"eval/m.{k}", "evaluate", k, ["evaluate"], f"results/m.{k}.json", ["train/m"], 1.0) for k in ("old", "new"))
    plan = Plan(data="d", budget=get_budget("demo"), llm="l", sbert="s", seed=0, steps=[train, old, new], tables=[])
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "m.old.json").write_text(json.dumps({"created": "2026-12-01T10:00:00+00:00"}))
    (tmp_path / "results" / "m.new.json").write_text(json.dumps({"created": "2026-12-02T10:00:00+00:00"}))
    marker_path(tmp_path, train).parent.mkdir()
    marker_path(tmp_path, train).write_text(json.dumps({"finished": "2026-12-02T09:00:00Z"}))  # retrained in between
    assert scored_on_earlier_training(plan, tmp_path) == ["eval/m.old"]
    # the CF model under it retrained after both cells: neither shares that CF model with cells scored later
    cf = Step("train/cf", "train", "cf", ["train", "cf"], "work/cf", [], 1.0)
    train.needs.append("train/cf")
    plan = Plan(data="d", budget=get_budget("demo"), llm="l", sbert="s", seed=0, steps=[cf, train, old, new], tables=[])
    marker_path(tmp_path, cf).write_text(json.dumps({"finished": "2026-12-03T09:00:00Z"}))
    assert scored_on_earlier_training(plan, tmp_path) == ["eval/m.old", "eval/m.new"]


def test_report_names_the_command_that_makes_the_results_not_how_it_was_scheduled():
    from allmrec.reproduce.cli import _making_argv

    argv = ["reproduce", "--data", "d", "--time-limit", "2h", "--out", "R", "--report-only", "--time-limit=90m"]
    assert _making_argv(argv) == ["reproduce", "--data", "d", "--out", "R"]


def test_markers_name_their_machine_and_the_report_says_which_machine_ran_which_step(tmp_path):
    from allmrec.reproduce.plan import Plan, Step
    from allmrec.reproduce.report import machines_line
    from allmrec.reproduce.runner import machine, marker_path

    steps = [Step(f"eval/m.{k}", "evaluate", k, ["evaluate"], f"results/m.{k}.json", [], 1.0) for k in "abcd"]
    plan = Plan(data="d", budget=get_budget("demo"), llm="l", sbert="s", seed=0, steps=steps[:3], tables=[])

    def runner(argv):
        (tmp_path / "results" / "m.a.json").write_text("{}")
        return 0

    (tmp_path / "results").mkdir()
    run_plan(Plan(data="d", budget=plan.budget, llm="l", sbert="s", seed=0, steps=steps[:1], tables=[]), tmp_path,
             runner=runner, echo=lambda *_: None)
    assert json.loads(marker_path(tmp_path, steps[0]).read_text())["machine"] == machine() != ""
    assert machines_line(plan, tmp_path) == f"- machine: {machine()}"
    # a step finished on another machine, one from before markers named theirs, one not finished (d)
    marker_path(tmp_path, steps[1]).write_text(json.dumps({"seconds": 1.0, "estimate_s": 1.0, "machine": "Other CPU"}))
    marker_path(tmp_path, steps[2]).write_text(json.dumps({"seconds": 1.0, "estimate_s": 1.0}))
    line = machines_line(plan, tmp_path)
    assert line.startswith("- machines (timings compare only within one): ")
    assert f"{machine()} (1 step: `eval/m.a`)" in line and "Other CPU (1 step: `eval/m.b`)" in line
    assert "not recorded (1 step)" in line and "eval/m.d" not in line


def test_a_timing_table_says_whether_its_rows_ran_on_one_machine(tmp_path):
    from allmrec.reproduce.plan import Plan, Row, Step, TableSpec
    from allmrec.reproduce.report import timing_machines_note
    from allmrec.reproduce.runner import marker_path

    steps = [Step(sid, "train" if sid.startswith("train") else "evaluate", sid, [], f"x/{sid}", [], 1.0)
             for sid in ("train/a", "eval/a", "train/b", "eval/b")]
    plan = Plan(data="d", budget=get_budget("demo"), llm="l", sbert="s", seed=0, steps=steps, tables=[])
    spec = TableSpec("10", "t", rows=[Row("A", {"train": "train/a", "rank": "eval/a"}),
                                      Row("B", {"train": "train/b", "rank": "eval/b"})])
    (tmp_path / "done").mkdir()
    for s in steps:
        marker_path(tmp_path, s).write_text(json.dumps({"machine": "CPU X"}))
    assert timing_machines_note(spec, plan, tmp_path) == "Every row measured on one machine: CPU X."
    marker_path(tmp_path, steps[2]).write_text(json.dumps({"machine": "CPU Y"}))
    marker_path(tmp_path, steps[3]).write_text(json.dumps({}))  # finished before markers named their machine
    note = timing_machines_note(spec, plan, tmp_path)
    assert note.startswith("Not known to be timed on one machine (A: CPU X; B: CPU Y, not recorded)") and "efficiency.py" in note
