"""Stage-2 training, evaluation and recommend end to end on the tiny dataset with a tiny random Llama.

On-disk inputs come from the ``stage2_inputs`` fixture (conftest.py), built the way the earlier stages write them: a SASRec checkpoint
(``save_pretrained``), a stage-1 directory (``config.json`` with ``cf_model_path`` +
``item_embeddings.safetensors`` with ``joint``/``text``) and an LLM folder (tiny Llama + SmolLM2 tokenizer).
"""

from __future__ import annotations

import json
from argparse import Namespace

import numpy as np
import pytest
import torch

from allmrec.cli import main
from allmrec.data.dataset import PreparedDataset
from allmrec.errors import AllmrecError



@pytest.fixture(scope="module")
def trained(stage2_inputs, tmp_path_factory):
    data, s1, llm = stage2_inputs
    out = tmp_path_factory.mktemp("stage2") / "model"
    rc = main(["train", "stage2", "--data", str(data), "--stage1", str(s1), "--llm", str(llm), "--out", str(out),
               "--max-steps", "4", "--eval-every", "2", "--valid-users", "6", "--lr", "1e-3", "--no-progress",
               "--recipe", "listwise"])  # the frozen-LLM path: the checkpoint holds no LLM weight at all
    assert rc == 0
    return out


def test_training_writes_a_loadable_checkpoint_without_llm(trained, stage2_inputs):
    from safetensors import safe_open

    from allmrec.model.modeling_allmrec import ALLMRecForRecommendation

    files = {p.name for p in trained.iterdir()}
    assert {"config.json", "model.safetensors", "item_catalogue.json", "training_log.json"} <= files
    with safe_open(str(trained / "model.safetensors"), "pt") as f:
        assert not [k for k in f.keys() if k.startswith("llm.")]
    log = json.loads((trained / "training_log.json").read_text())
    assert log["steps"] == 4 and len(log["losses"]) == 4 and log["samples_seen"] == 16
    assert [v["step"] for v in log["validations"]] == [2, 4] and log["best"]["step"] in (2, 4)
    assert {"load", "train", "validate", "save"} <= set(log["timings"]) and log["train_samples_per_second"] > 0
    assert log["trainable_parameters"] == sum(
        p.numel() for n, p in ALLMRecForRecommendation.from_pretrained(trained).named_parameters() if p.requires_grad
    )
    cfg = json.loads((trained / "config.json").read_text())
    assert cfg["llm_name_or_path"] == str(stage2_inputs[2]) and cfg["domain"] == "movie" and cfg["num_items"] == 40


def test_training_refuses_to_overwrite(trained, stage2_inputs):
    data, s1, llm = stage2_inputs
    assert main(["train", "stage2", "--data", str(data), "--stage1", str(s1), "--llm", str(llm), "--out", str(trained)]) == 2


def test_training_moves_the_projectors_and_only_them(stage2_inputs, tmp_path):
    """Two runs with the same seed agree; the trained projectors differ from their initialisation."""
    from allmrec.model.training import Stage2TrainingArguments, build_model, train_stage2

    data, s1, llm = stage2_inputs
    common = dict(data=str(data), stage1=str(s1), llm=str(llm), max_steps=2, valid_users=0, lr=1e-3, progress=False,
                  recipe="listwise")  # frozen LLM: only the projectors may move
    logs = [train_stage2(Stage2TrainingArguments(out=str(tmp_path / f"run{i}"), **common)) for i in range(2)]
    assert [x["loss"] for x in logs[0]["losses"]] == [x["loss"] for x in logs[1]["losses"]]
    from safetensors.torch import load_file

    a, b = (load_file(str(tmp_path / f"run{i}" / "model.safetensors")) for i in range(2))
    assert all(torch.equal(a[k], b[k]) for k in a)
    torch.manual_seed(0)
    fresh = build_model(Stage2TrainingArguments(out=str(tmp_path / "unused"), **common), PreparedDataset.load(data), "cpu")
    init = fresh.state_dict_without_llm()
    moved = [k for k in a if not torch.equal(a[k], init[k])]
    assert moved and all(k.startswith(("user_projector.", "item_projector.")) for k in moved)


def test_training_samples_are_seeded_and_valid(tiny_data):
    from allmrec.model.training import Stage2Samples

    ds = PreparedDataset.load(tiny_data)
    s = Stage2Samples(ds, num_negatives=19, seed=3)
    users = ds.split("users")
    row = {int(u): (list(t), int(v), int(te)) for u, t, v, te in zip(users["user_id"], users["train"], users["valid"], users["test"])}
    for i in range(len(s)):
        x = s.sample(i, epoch=0)
        train, valid, test = row[x["user_id"]]
        assert x["target"] == train[-1] and list(x["history"]) == train[:-1]
        cands = list(x["candidates"])
        assert len(cands) == 20 and len(set(cands)) == 20 and cands.count(x["target"]) == 1
        negatives = set(cands) - {x["target"]}
        assert not negatives & (set(train) | {valid, test})
    again = Stage2Samples(ds, num_negatives=19, seed=3)
    assert np.array_equal(s.sample(5, 1)["candidates"], again.sample(5, 1)["candidates"])
    assert not np.array_equal(s.sample(5, 0)["candidates"], s.sample(5, 1)["candidates"])  # redrawn per epoch
    assert len(Stage2Samples(ds, max_users=7)) == 7


def test_few_shot_trains_on_the_prepared_subset_only(tiny_data):
    """Paper Table 6: --few-shot K trains stage 2 (and TALLRec, stage 1, the CF model) on the prepared K users."""
    from allmrec.alignment.samples import Stage1Sampler
    from allmrec.model.training import Stage2Samples

    ds = PreparedDataset.load(tiny_data)
    chosen = ds.few_shot_users(8)
    s = Stage2Samples(ds, only_users=chosen)
    assert sorted(int(u) for u in s.user_ids) == sorted(chosen)
    stage1 = Stage1Sampler(ds.train_sequences, ds.num_items, 12, batch_size=4, only_users=chosen)
    assert sorted(int(u) + 1 for u in stage1.users) == sorted(chosen)
    seen = {int(u) for batch in stage1.epoch(0) for u in batch.user_ids}
    assert seen == set(chosen)


def test_random_item_tables_keep_shape_and_spread_but_not_the_items():
    """Table 9 "with random joint embedding": F_I reads vectors with the stage-1 statistics and no item knowledge."""
    import torch

    from allmrec.model.training import random_item_tables

    g = torch.Generator().manual_seed(0)
    tables = {"joint": torch.randn(41, 8, generator=g) * 3 + 1, "text": torch.rand(41, 8, generator=g)}
    tables["joint"][0] = tables["text"][0] = 0
    fake = random_item_tables(tables, seed=0)
    assert fake["joint"].shape == tables["joint"].shape and bool((fake["joint"][0] == 0).all())
    assert torch.allclose(fake["joint"][1:].mean(0), tables["joint"][1:].mean(0), atol=1.5)
    assert abs(float(fake["joint"][1:].std()) - float(tables["joint"][1:].std())) < 1.0
    assert not torch.allclose(fake["joint"], tables["joint"])
    assert torch.equal(random_item_tables(tables, seed=0)["joint"], fake["joint"])  # seeded


@pytest.mark.parametrize("mode", ["rank", "generate"])
def test_evaluate_checkpoint_writes_the_results_schema(trained, tiny_data, tmp_path, mode):
    out = tmp_path / f"{mode}.json"
    rc = main(["evaluate", "--model", str(trained), "--data", str(tiny_data), "--split", "test", "--out", str(out),
               "--mode", mode, "--item-embedding", "auto", "--batch-size", "8"])
    assert rc == 0
    res = json.loads(out.read_text())
    ds = PreparedDataset.load(tiny_data)
    assert res["model_type"] == "allmrec" and res["mode"] == mode and res["item_embedding"] == "auto"
    assert res["n_users"] == len(ds.split("test")) and res["candidate_fingerprint"] == ds.candidate_fingerprint("test")
    assert sum(b["n_users"] for b in res["scenarios"].values()) == res["n_users"]
    expected = {"hit@1", "hit@5", "hit@10", "ndcg@10", "mrr"} if mode == "rank" else {"hit@1", "hit@1_lenient", "valid_rate"}
    assert set(res["metrics"]) == expected
    assert all(0.0 <= v <= 1.0 for v in res["metrics"].values())
    if mode == "generate":
        assert res["examples"] and res["generation"]["repetition_penalty"] == 1.5
        assert res["metrics"]["hit@1"] <= res["metrics"]["valid_rate"]


def test_evaluate_max_users_takes_a_seeded_subset(trained, tiny_data):
    from allmrec.model.inference import evaluate_checkpoint

    args = Namespace(model=str(trained), data=str(tiny_data), split="valid", mode="rank", item_embedding=None,
                     batch_size=None, max_users=7)
    a, b = evaluate_checkpoint(args), evaluate_checkpoint(args)
    assert a["n_users"] == 7 and a["users_in_split"] == 60 and a["user_subset"] == {"max_users": 7, "seed": 0}
    assert a["metrics"] == b["metrics"] and a["evaluated_rows_fingerprint"] == b["evaluated_rows_fingerprint"]
    assert a["item_embedding"] == "cf"  # the checkpoint's own setting when none is given


def test_generation_metrics_exact_lenient_valid(tiny_data):
    from allmrec.model.inference import generation_metrics

    ds = PreparedDataset.load(tiny_data)
    rows = ds.eval_rows("test")
    rows = {k: v[:4] for k, v in rows.items()}
    titles = ds.titles
    other = [int(c) for c in rows["candidates"][1] if c != rows["target"][1]][0]
    outputs = [
        f' "{titles[rows["target"][0]]}"',  # exact hit
        f' "{titles[other]}"',  # a valid miss
        ' "Not A Candidate"',  # invalid
        f' "{titles[rows["target"][3]]} (director\'s cut)"',  # lenient hit only
    ]
    m = generation_metrics(outputs, rows, titles)
    assert m["hit@1"].tolist() == [1, 0, 0, 0]
    assert m["valid_rate"].tolist() == [1, 1, 0, 0]
    assert m["hit@1_lenient"].tolist() == [1, 0, 0, 1]


def test_recommend_cli(trained, capsys):
    assert main(["recommend", "--model", str(trained), "--history", "1,2,3", "--candidates", "4,5,6", "--json"]) == 0
    ranked = json.loads(capsys.readouterr().out)
    assert sorted(r["item_id"] for r in ranked) == [4, 5, 6] and ranked[0]["score"] >= ranked[-1]["score"]
    ds_titles = json.loads((trained / "item_catalogue.json").read_text())["titles"]
    assert main(["recommend", "--model", str(trained), "--history", f"{ds_titles[1]}|{ds_titles[2]}",
                 "--candidates", f"{ds_titles[4]}|{ds_titles[5]}"]) == 0
    assert ds_titles[4] in capsys.readouterr().out
    assert main(["recommend", "--model", str(trained), "--history", "1", "--candidates", "4,5", "--mode", "generate", "--json"]) == 0
    assert "answer" in json.loads(capsys.readouterr().out)
    assert main(["recommend", "--model", str(trained), "--history", "No Such Title", "--candidates", "4"]) == 2


def test_bad_training_options_are_one_line_errors(stage2_inputs, tmp_path):
    from allmrec.model.training import Stage2TrainingArguments

    data, s1, llm = stage2_inputs
    with pytest.raises(AllmrecError, match="--batch-size"):
        Stage2TrainingArguments(data=str(data), stage1=str(s1), out=str(tmp_path / "x"), batch_size=0).validate()
    assert main(["train", "stage2", "--data", str(data), "--stage1", str(tmp_path), "--llm", str(llm),
                 "--out", str(tmp_path / "y")]) == 2  # not a stage-1 directory


def test_all_targets_draw_any_position_seeded_and_valid(tiny_data):
    from allmrec.model.training import Stage2Samples

    ds = PreparedDataset.load(tiny_data)
    samples = Stage2Samples(ds, num_negatives=5, seed=3, targets="all")
    again = Stage2Samples(ds, num_negatives=5, seed=3, targets="all")
    positions = set()
    for i in range(len(samples)):
        s = samples.sample(i, epoch=1)
        seq = list(samples.sequences[i])
        twin = again.sample(i, epoch=1)
        assert all(np.array_equal(np.asarray(s[k]), np.asarray(twin[k])) for k in s)
        p = len(s["history"])
        assert 1 <= p < len(seq) and s["target"] == seq[p] and list(s["history"]) == seq[:p]
        cands = list(s["candidates"])
        assert cands.count(s["target"]) == 1 and not (set(cands) - {s["target"]}) & samples.seen[i]
        positions.add(p == len(seq) - 1)
    assert positions == {True, False}  # not only the last item
    last = Stage2Samples(ds, num_negatives=5, seed=3)
    assert all(last.sample(i, 0)["target"] == last.sequences[i][-1] for i in range(len(last)))


def test_recipes_fill_only_unset_fields(stage2_inputs, tmp_path):
    from allmrec.model.training import RECIPES, Stage2TrainingArguments

    data, s1, _ = stage2_inputs
    args = Stage2TrainingArguments(data=str(data), stage1=str(s1), out=str(tmp_path / "a"), recipe="paper", lr=3e-4)
    args.validate()
    assert (args.objective, args.prompt_layout, args.targets, args.lr) == ("token", "paper", "last", 3e-4)
    frozen = Stage2TrainingArguments(data=str(data), stage1=str(s1), out=str(tmp_path / "b"), recipe="listwise")
    frozen.validate()
    assert {k: getattr(frozen, k) for k in RECIPES["listwise"]} == RECIPES["listwise"]
    assert (frozen.answer_format, frozen.llm_lora_rank, frozen.lora_lr) == ("title", 0, None)  # frozen LLM
    best = Stage2TrainingArguments(data=str(data), stage1=str(s1), out=str(tmp_path / "e"), recipe="index-lora", lora_lr=1e-4)
    best.validate()
    assert (best.answer_format, best.llm_lora_rank, best.lora_lr, best.objective) == ("index", 8, 1e-4, "token+listwise")
    with pytest.raises(AllmrecError, match="--recipe"):
        Stage2TrainingArguments(data=str(data), stage1=str(s1), out=str(tmp_path / "c"), recipe="magic").validate()
    with pytest.raises(AllmrecError, match="--objective"):
        Stage2TrainingArguments(data=str(data), stage1=str(s1), out=str(tmp_path / "d"), objective="bpr").validate()


def test_lr_schedule_warms_up_then_decays():
    from allmrec.model.training import lr_multiplier

    f = lr_multiplier("cosine", 4, 104)
    assert [round(f(s), 3) for s in (0, 3)] == [0.25, 1.0]
    assert f(54) == pytest.approx(0.55) and f(104) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)
    assert lr_multiplier("constant", 0, 10)(7) == 1.0


@pytest.mark.parametrize("ablate", ["shuffle-users", "shuffle-items", "shuffle-history"])
def test_ablations_change_scores_and_are_recorded(trained, tiny_data, tmp_path, ablate):
    out = tmp_path / f"{ablate}.json"
    base = tmp_path / "base.json"
    assert main(["evaluate", "--model", str(trained), "--data", str(tiny_data), "--mode", "rank", "--out", str(base)]) == 0
    assert main(["evaluate", "--model", str(trained), "--data", str(tiny_data), "--mode", "rank", "--ablate", ablate,
                 "--out", str(out)]) == 0
    res, ref = json.loads(out.read_text()), json.loads(base.read_text())
    assert res["ablation"]["kind"] == ablate and "--ablate" in res["command"] and "ablation" not in ref
    assert res["evaluated_rows_fingerprint"] == ref["evaluated_rows_fingerprint"]  # same users and candidates
    # (a 4-step tiny random model barely reads its soft tokens, so the metrics may coincide; what is permuted is
    # checked directly below and in test_item_permutation_swaps_soft_tokens_only)


def test_match_fusion_pulls_the_ranking_towards_the_matching_head(trained, tiny_data, tmp_path):
    """--match-fusion W: W = 0 is the LLM alone; a huge W ranks as the matching head cos(O_u, O_c) does; the results
    file records W; a checkpoint without a trained matching head is refused."""
    import torch

    from allmrec.model.inference import _RowEncoder, load_for_inference, rank_scores

    model = load_for_inference(str(trained))
    ds = PreparedDataset.load(tiny_data)
    rows = ds.eval_rows("test")
    plain = rank_scores(model, rows, ds.titles, progress=False)
    np.testing.assert_allclose(rank_scores(model, rows, ds.titles, progress=False, match_fusion=0.0), plain)
    fused = rank_scores(model, rows, ds.titles, progress=False, match_fusion=1e6)
    b = _RowEncoder(model, ds.titles).batch(rows, np.arange(len(rows["user_id"])))
    with torch.no_grad():
        match = model.match_scores(model.user_representation(b["cf_input_ids"], b["user_ids"]),
                                   torch.as_tensor(np.asarray(rows["candidates"]))).double().numpy()
    assert (fused.argmax(1) == match.argmax(1)).all()
    out = tmp_path / "fused.json"
    assert main(["evaluate", "--model", str(trained), "--data", str(tiny_data), "--mode", "rank", "--match-fusion", "0.5",
                 "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["match_fusion"] == 0.5 and "--match-fusion 0.5" in res["command"]
    model.config.match_weight = 0.0
    with pytest.raises(AllmrecError, match="matching loss"):
        rank_scores(model, rows, ds.titles, progress=False, match_fusion=1.0)


def test_shuffle_users_gives_every_user_another_users_history(tiny_data):
    from allmrec.model.inference import apply_ablation

    rows = PreparedDataset.load(tiny_data).eval_rows("test")
    out = apply_ablation(None, rows, "shuffle-users", seed=0)
    n = len(rows["user_id"])
    assert sorted(out["cf_user_id"].tolist()) == sorted(np.asarray(rows["user_id"]).tolist())
    assert all(out["cf_user_id"][i] != rows["user_id"][i] for i in range(n))
    assert all(list(out["cf_history"][i]) == list(rows["history"][list(rows["user_id"]).index(out["cf_user_id"][i])])
               for i in range(n))
    assert out["history"] is rows["history"]  # the prompt text keeps the user's own titles


def test_derangement_has_no_fixed_point_and_is_seeded():
    from allmrec.model.inference import derangement

    for n in (2, 3, 10, 943):
        p = derangement(n, 0)
        assert sorted(p.tolist()) == list(range(n)) and not (p == np.arange(n)).any()
    assert np.array_equal(derangement(50, 1), derangement(50, 1))


def test_ablate_refuses_models_without_soft_tokens(tiny_data, tmp_path):
    assert main(["evaluate", "--model", "llm:x", "--data", str(tiny_data), "--ablate", "shuffle-users",
                 "--out", str(tmp_path / "x.json")]) == 2


@pytest.mark.parametrize("command", [["train", "stage2"], ["train", "mlpllm"], ["train", "tallrec"], ["evaluate"], ["demo"]])
def test_help_renders(command, capsys):
    with pytest.raises(SystemExit) as e:  # argparse %-formats help strings: a stray % breaks --help
        main([*command, "--help"])
    assert e.value.code == 0 and "usage" in capsys.readouterr().out


def test_matching_pretraining_is_seeded_lowers_its_loss_and_is_logged(stage2_inputs, tmp_path):
    from allmrec.model.training import Stage2Samples, Stage2TrainingArguments, build_model, pretrain_matching

    data, s1, llm = stage2_inputs
    ds = PreparedDataset.load(data)
    runs = []
    for i in range(2):
        args = Stage2TrainingArguments(data=str(data), stage1=str(s1), llm=str(llm), out=str(tmp_path / f"m{i}"))
        args.validate()
        torch.manual_seed(0)
        model = build_model(args, ds, "cpu")
        llm_before = {k: v.clone() for k, v in model.llm.state_dict().items()}
        history = pretrain_matching(model, Stage2Samples(ds, 19, 0, targets="all"), ds, epochs=15, lr=1e-2, seed=0,
                                    valid_users=6, progress=False)
        assert all(torch.equal(v, model.llm.state_dict()[k]) for k, v in llm_before.items())
        runs.append((history, model.state_dict_without_llm()))
    (h0, w0), (h1, w1) = runs
    assert h0 == h1 and all(torch.equal(w0[k], w1[k]) for k in w0)
    assert len(h0) == 15 and all(0.0 <= r["valid_match_hit@1"] <= 1.0 for r in h0)
    assert h0[-1]["loss"] < h0[0]["loss"]


def test_matching_loss_needs_a_per_user_objective(stage2_inputs, tmp_path):
    from allmrec.model.training import Stage2TrainingArguments

    data, s1, _ = stage2_inputs
    with pytest.raises(AllmrecError, match="--match-weight"):
        Stage2TrainingArguments(data=str(data), stage1=str(s1), out=str(tmp_path / "a"), objective="token").validate()
    ok = Stage2TrainingArguments(data=str(data), stage1=str(s1), out=str(tmp_path / "b"), objective="token", match_weight=0.0)
    ok.validate()
    assert ok.match_pretrain_epochs == 20


def test_every_recipe_and_field_choice_is_accepted_by_the_cli():
    """The argparse choices of `allmrec train stage2` are the recipes and field values the config validates
    (index-lora was once missing from --recipe while the README told users to pass it)."""
    import argparse

    from allmrec.model.cli import _CHOICES, register_train
    from allmrec.model.training import FIELD_CHOICES, RECIPES

    assert set(_CHOICES["recipe"]) == set(RECIPES)
    parser = argparse.ArgumentParser()
    register_train(parser.add_subparsers())
    for recipe in RECIPES:
        args = parser.parse_args(["stage2", "--data", "d", "--stage1", "s", "--llm", "l", "--out", "o", "--recipe", recipe])
        assert args.recipe == recipe
    for name, values in FIELD_CHOICES.items():
        for v in values:
            args = parser.parse_args(["stage2", "--data", "d", "--stage1", "s", "--llm", "l", "--out", "o",
                                      "--" + name.replace("_", "-"), v])
            assert getattr(args, name) == v


def test_the_end_of_training_line_says_what_checkpoint_was_kept():
    from allmrec.training.prompt_loop import training_summary

    log = {"steps": 480, "samples_seen": 1918, "train_samples_per_second": 0.96, "best": None}
    line = training_summary("TALLRec", log, "runs/t", ", 460,800 trainable LoRA parameters")
    # no validation ran: no "nan at step -", the last step is the checkpoint
    assert line == ("TALLRec done: 480 steps, 1918 samples (0.96 samples/s), 460,800 trainable LoRA parameters; "
                    "no validation (--valid-users 0): the checkpoint is step 480; checkpoint: runs/t")
    log["best"] = {"hit@1": 0.3125, "step": 160}
    assert "best validation Hit@1 0.3125 at step 160; checkpoint: runs/t" in training_summary("stage 2", log, "runs/t")


def test_train_stage2_without_a_recipe_trains_what_the_demo_trains():
    """One default: `allmrec train stage2` with no --recipe resolves to exactly the fields the demo's stage-2
    command resolves to (the demo passes its recipe explicitly), and that recipe is the recipes table's default."""
    import argparse

    from allmrec.demo import DemoBudget
    from allmrec.model.cli import register_train
    from allmrec.model.recipes import DEFAULT_RECIPE, RECIPES
    from allmrec.model.training import arguments_from_namespace
    from allmrec.reproduce.budgets import BUDGETS

    parser = argparse.ArgumentParser()
    register_train(parser.add_subparsers())
    base = ["stage2", "--data", "d", "--stage1", "s", "--llm", "l", "--out", "o"]
    plain = arguments_from_namespace(parser.parse_args(base))
    demo = arguments_from_namespace(parser.parse_args([*base, "--recipe", DemoBudget().stage2_recipe]))
    plain.apply_recipe()
    demo.apply_recipe()
    assert plain == demo
    assert plain.recipe == DemoBudget().stage2_recipe == DEFAULT_RECIPE == "index-lora"
    assert {k: getattr(plain, k) for k in RECIPES[DEFAULT_RECIPE]} == RECIPES[DEFAULT_RECIPE]
    assert (plain.answer_format, plain.llm_lora_rank) == ("index", 8)
    assert all(b.stage2_recipe == DEFAULT_RECIPE for b in BUDGETS.values())
