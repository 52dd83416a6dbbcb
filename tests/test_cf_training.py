"""Training loop and `allmrec train cf` on the tiny dataset (and one slow run on ml-100k)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from allmrec.cf import load_cf_model
from allmrec.cf.training import CFTrainer, CFTrainingArguments
from allmrec.cli import main
from allmrec.errors import AllmrecError

BACKBONES = ["sasrec", "gru4rec", "nextitnet", "ncf"]


def _args(tiny_data, tmp_path, **kw) -> CFTrainingArguments:
    base = dict(data=str(tiny_data), out=str(tmp_path / "ckpt"), hidden_size=16, maxlen=10, lr=1e-2, progress=False,
                eval_batch_size=64, seed=0)
    base.update(kw)
    return CFTrainingArguments(**base)


@pytest.mark.parametrize("loss", ["bce", "ce"])
@pytest.mark.parametrize("model", BACKBONES)
def test_loss_falls_on_tiny_data(tiny_data, tmp_path, model, loss):
    trainer = CFTrainer(_args(tiny_data, tmp_path, model=model, loss=loss, dropout=None if model == "nextitnet" else 0.1))
    losses = [trainer.train_epoch(epoch)[0] for epoch in range(1, 16)]
    assert all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.9 * np.mean(losses[:3]), losses


def test_training_learns_the_ring(tiny_data, tmp_path):
    # each tiny user walks items i, i+1, i+2, ...: a sequential model must beat chance (1/20) by far
    trainer = CFTrainer(_args(tiny_data, tmp_path, model="sasrec", loss="ce", dropout=0.1))
    before = trainer.validate()["hit@1"]
    for epoch in range(1, 41):
        trainer.train_epoch(epoch)
    after = trainer.validate()["hit@1"]
    assert after > 0.5 and after > before + 0.3


def test_cli_writes_checkpoint_and_log_and_keeps_the_best(tiny_data, tmp_path):
    out = tmp_path / "m"
    rc = main(["train", "cf", "--data", str(tiny_data), "--model", "sasrec", "--out", str(out), "--epochs", "6",
               "--hidden-size", "16", "--maxlen", "10", "--no-progress", "--seed", "1"])
    assert rc == 0
    assert {"config.json", "model.safetensors", "training_log.json"} <= {p.name for p in out.iterdir()}
    log = json.loads((out / "training_log.json").read_text())
    assert log["status"] == "finished" and log["epochs_run"] == 6 and len(log["epochs"]) == 6
    assert all(e["valid"] is not None and e["seconds"] > 0 and np.isfinite(e["loss"]) for e in log["epochs"])
    best = max(log["epochs"], key=lambda e: e["valid"]["ndcg@10"])
    assert log["best_epoch"] == best["epoch"]
    # the saved weights are the best epoch's: re-validating them reproduces the logged metrics
    model = load_cf_model(out)
    trainer = CFTrainer(_args(tiny_data, tmp_path, out=str(tmp_path / "unused")))
    from allmrec.evaluation.cf_evaluator import candidate_ranks
    from allmrec.evaluation.metrics import rank_metrics

    again = rank_metrics(candidate_ranks(model, trainer.valid_rows))
    assert again["ndcg@10"] == pytest.approx(log["best_valid"]["ndcg@10"], abs=1e-6)
    # an existing output is never silently replaced
    with pytest.raises(AllmrecError, match="--overwrite"):
        CFTrainer(_args(tiny_data, tmp_path, out=str(out), epochs=1)).train()
    assert main(["train", "cf", "--data", str(tiny_data), "--out", str(out), "--epochs", "1", "--no-progress"]) == 2


def test_same_seed_same_run(tiny_data, tmp_path):
    logs = []
    for run in ("a", "b"):
        out = CFTrainer(_args(tiny_data, tmp_path, out=str(tmp_path / run), epochs=3)).train()
        logs.append(json.loads((out / "training_log.json").read_text())["epochs"])
    assert [e["loss"] for e in logs[0]] == [e["loss"] for e in logs[1]]
    assert [e["valid"] for e in logs[0]] == [e["valid"] for e in logs[1]]
    a, b = load_cf_model(tmp_path / "a"), load_cf_model(tmp_path / "b")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_early_stopping_after_patience(tiny_data, tmp_path):
    # lr 0: validation never improves after the first evaluation → stops after 1 + patience epochs
    out = CFTrainer(_args(tiny_data, tmp_path, lr=1e-12, epochs=50, patience=3)).train()
    log = json.loads((out / "training_log.json").read_text())
    assert log["stopped_early"] is True and log["epochs_run"] == 4 and log["best_epoch"] == 1


def test_eval_every_validates_on_schedule_and_at_the_end(tiny_data, tmp_path):
    out = CFTrainer(_args(tiny_data, tmp_path, epochs=5, eval_every=2)).train()
    log = json.loads((out / "training_log.json").read_text())
    assert [e["epoch"] for e in log["epochs"] if e["valid"] is not None] == [2, 4, 5]


def test_few_shot_trains_and_validates_on_the_subset(tiny_data, tmp_path):
    out = CFTrainer(_args(tiny_data, tmp_path, epochs=1, few_shot=8)).train()
    log = json.loads((out / "training_log.json").read_text())
    assert log["train_samples"] <= 8 and log["valid_users"] == 8


def test_bad_arguments_raise(tiny_data, tmp_path):
    with pytest.raises(AllmrecError):
        _args(tiny_data, tmp_path, model="bert4rec")
    with pytest.raises(AllmrecError):
        _args(tiny_data, tmp_path, epochs=0)
    with pytest.raises(AllmrecError):
        CFTrainer(_args(tiny_data, tmp_path, model="nextitnet", dropout=0.2))
    assert _args(tiny_data, tmp_path, model="ncf").batch_size == 256


@pytest.mark.slow
def test_sasrec_on_ml100k_beats_random(ml100k_data, tmp_path):
    out = CFTrainer(CFTrainingArguments(data=str(ml100k_data), out=str(tmp_path / "sasrec"), epochs=6, progress=False)).train()
    from allmrec.data.dataset import PreparedDataset
    from allmrec.evaluation.cf_evaluator import evaluate_cf_model

    res = evaluate_cf_model(load_cf_model(out), PreparedDataset.load(ml100k_data), split="test", full_ranking=False,
                            progress=False)
    assert res["n_users"] == 943
    assert res["metrics"]["hit@1"] > 0.12  # random is 0.05
    assert res["metrics"]["ndcg@10"] > 0.4  # random ≈ 0.15


def _train_in_process(data: str, out: str) -> None:
    # The forked child inherits the parent's (single-process) accelerate singleton from earlier
    # tests; drop it so the launcher's distributed environment is read afresh.
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    CFTrainer(CFTrainingArguments(data=data, out=out, epochs=2, hidden_size=16, maxlen=10, progress=False)).train()


@pytest.mark.slow
def test_same_loop_runs_on_two_processes(tiny_data, tmp_path):
    # accelerate's CPU launcher: two gloo processes, each with half of every epoch's batches.
    # Run from a fresh interpreter: debug_launcher forks, and forking a pytest process whose torch
    # thread pools were already used by earlier tests can deadlock the children.
    import os
    import subprocess
    import sys
    import textwrap

    out = tmp_path / "ddp"
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from accelerate import debug_launcher
        from test_cf_training import _train_in_process
        debug_launcher(_train_in_process, args=({str(tiny_data)!r}, {str(out)!r}), num_processes=2)
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    log = json.loads((out / "training_log.json").read_text())
    assert log["num_processes"] == 2 and log["status"] == "finished" and log["epochs_run"] == 2
    assert load_cf_model(out).config.model_type == "sasrec"
