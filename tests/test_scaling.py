"""Scaling: `accelerate launch` with several CPU processes (gloo), gradient accumulation, resumable states.

Multi-process runs and kills happen in subprocesses (``accelerate launch`` / ``python -m allmrec``): forking
a pytest process whose torch thread pools are in use can deadlock, and a SIGKILL must hit a real process.
Inputs: the tiny dataset and the tiny random Llama of ``conftest.stage2_inputs``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from allmrec.errors import AllmrecError, CheckpointError
from allmrec.training.checkpointing import KILL_AFTER_STEP_ENV, STATE_FILE, resolve_state_dir
from allmrec.training.distributed import process_slice, shard_and_gather

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def allmrec(*args: str, processes: int = 1, env: dict | None = None, expect_rc: int = 0) -> subprocess.CompletedProcess:
    """Run the CLI as a user would: ``python -m allmrec …`` or ``accelerate launch … -m allmrec …``."""
    if processes == 1:
        cmd = [sys.executable, "-m", "allmrec", *args]
    else:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(_free_port()), "-m", "allmrec", *args]
    proc = subprocess.run(cmd, env={**ENV, **(env or {})}, capture_output=True, text=True, timeout=900)
    assert proc.returncode == expect_rc, f"{' '.join(cmd)} → rc {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def _stage2_args(inputs, out: Path, *extra: str) -> list[str]:
    data, s1, llm = inputs
    return ["train", "stage2", "--data", str(data), "--stage1", str(s1), "--llm", str(llm), "--out", str(out),
            "--lr", "1e-2", "--seed", "3", "--no-progress",
            # exact equality across process counts and resumes: fp32 (bf16 autocast rounds differently per split)
            # and the frozen-LLM recipe (only the projectors enter a training state)
            "--mixed-precision", "no", "--recipe", "listwise", *extra]


def _projectors(out: Path) -> dict[str, torch.Tensor]:
    state = load_file(str(out / "model.safetensors"))
    return {k: v for k, v in state.items() if "projector" in k}


# ---------------------------------------------------------------------------------------------- unit
def test_process_slices_partition_rows_in_whole_batches():
    for n in (0, 1, 5, 17, 60):
        for count in (1, 2, 3):
            for align in (1, 4):
                parts = [process_slice(n, i, count, align) for i in range(count)]
                assert np.array_equal(np.concatenate(parts), np.arange(n))  # every row once, in order
                assert all(p[0] % align == 0 for p in parts if len(p))  # batches never straddle processes


def test_shard_and_gather_is_a_plain_call_in_one_process():
    rows = {"user_id": np.arange(5), "history": [[1], [2], [3], [4], [5]]}
    out = shard_and_gather(lambda r: (np.asarray(r["user_id"]) * 2, [h[0] for h in r["history"]], None), rows)
    assert out[0].tolist() == [0, 2, 4, 6, 8] and out[1] == [1, 2, 3, 4, 5] and out[2] is None


def test_resume_from_a_missing_or_empty_state_is_a_one_line_error(tmp_path):
    with pytest.raises(CheckpointError, match="no such training state"):
        resolve_state_dir(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no complete training state"):
        resolve_state_dir(tmp_path / "empty")
    (tmp_path / "s" / ".step-00000004.tmp").mkdir(parents=True)  # a save killed half-way is never picked
    (tmp_path / "s" / "step-00000002").mkdir()
    (tmp_path / "s" / "step-00000002" / STATE_FILE).write_text("{}")
    assert resolve_state_dir(tmp_path / "s").name == "step-00000002"


def test_scaling_options_are_validated(stage2_inputs, tmp_path):
    from allmrec.model.training import Stage2TrainingArguments

    data, s1, llm = stage2_inputs
    for bad in ({"gradient_accumulation_steps": 0}, {"save_state_every": 0}, {"save_state_limit": 0},
                {"resume_from": str(tmp_path / "missing")}):
        with pytest.raises(AllmrecError):
            Stage2TrainingArguments(data=str(data), stage1=str(s1), out=str(tmp_path / "o"), llm=str(llm), **bad).validate()


# ---------------------------------------------------------------------------------------------- distributed
@pytest.mark.slow
@pytest.mark.parametrize("batch,accum,steps", [(3, 2, 4), (1, 1, 2)], ids=["batch3-accum2", "batch1-empty-share"])
def test_two_processes_train_the_same_stage2_weights_as_one(stage2_inputs, tmp_path, batch, accum, steps):
    # Same global batch: 1 process (no accumulation) vs 2 gloo processes with `accum` micro-batches each.
    # batch 3 splits 2 + 1 users (unequal target tokens: the loss normalisation must be global);
    # batch 1 leaves process 1 without a user at every step (it joins the all-reduce with zero weight).
    common = ["--batch-size", str(batch), "--max-steps", str(steps), "--valid-users", "0"]
    allmrec(*_stage2_args(stage2_inputs, tmp_path / "one", *common))
    allmrec(*_stage2_args(stage2_inputs, tmp_path / "two", *common, "--gradient-accumulation-steps", str(accum)),
            processes=2)
    one, two = (json.loads((tmp_path / d / "training_log.json").read_text()) for d in ("one", "two"))
    assert one["num_processes"] == 1 and two["num_processes"] == 2 and two["gradient_accumulation_steps"] == accum
    assert one["samples_seen"] == two["samples_seen"] == batch * steps
    np.testing.assert_allclose([x["loss"] for x in two["losses"]], [x["loss"] for x in one["losses"]], rtol=1e-5)
    w1, w2 = _projectors(tmp_path / "one"), _projectors(tmp_path / "two")
    assert w1.keys() == w2.keys() and len(w1) >= 8
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-5, atol=1e-6, msg=k)


@pytest.mark.slow
def test_two_processes_evaluate_exactly_like_one(stage2_inputs, tmp_path):
    data, _, _ = stage2_inputs
    model = tmp_path / "model"
    allmrec(*_stage2_args(stage2_inputs, model, "--max-steps", "2", "--valid-users", "0"))
    cf = Path(json.loads((stage2_inputs[1] / "config.json").read_text())["cf_model_path"])
    cases = [("allmrec-rank", model, ["--mode", "rank"]), ("allmrec-generate", model, ["--mode", "generate"]),
             ("cf", cf, [])]
    for name, path, extra in cases:
        results = {}
        for n in (1, 2):
            out = tmp_path / f"{name}-{n}.json"
            allmrec("evaluate", "--model", str(path), "--data", str(data), "--out", str(out), *extra, processes=n)
            results[n] = json.loads(out.read_text())
        assert results[1]["n_users"] == results[2]["n_users"] > 0, name
        assert results[1]["candidate_fingerprint"] == results[2]["candidate_fingerprint"]
        assert results[2]["metrics"] == results[1]["metrics"], name  # identical, not close
        assert results[2]["scenarios"] == results[1]["scenarios"], name


# ---------------------------------------------------------------------------------------------- resume
def _kill_then_resume(args: list[str], out: Path, kill_after: int) -> list[str]:
    """Run ``args`` until SIGKILL after step ``kill_after``, then resume from the newest state."""
    killed = allmrec(*args, env={KILL_AFTER_STEP_ENV: str(kill_after)}, expect_rc=-signal.SIGKILL)
    assert "killing this process now" in killed.stderr
    state_dir = out.parent / f"{out.name}-state"
    states = sorted(p.name for p in state_dir.iterdir())
    allmrec(*args, "--resume-from", str(state_dir))
    return states


@pytest.mark.slow
def test_killed_stage2_run_resumes_to_the_same_weights(stage2_inputs, tmp_path):
    def args(out):
        return _stage2_args(stage2_inputs, out, "--batch-size", "4", "--max-steps", "7", "--valid-users", "6",
                            "--eval-every", "3", "--save-state-every", "2", "--gradient-accumulation-steps", "2")

    allmrec(*args(tmp_path / "straight"))
    states = _kill_then_resume(args(tmp_path / "resumed"), tmp_path / "resumed", kill_after=5)
    assert states == ["step-00000002", "step-00000004"]  # the kill came after step 5: step 6 was never saved
    state = tmp_path / "resumed-state" / "step-00000004"
    saved = load_file(str(state / "trainable_0.safetensors"))
    assert saved and all("projector" in k for k in saved)  # the frozen LLM (and CF model) never enter a state
    a, b = (json.loads((tmp_path / d / "training_log.json").read_text()) for d in ("straight", "resumed"))
    assert b["resumed_from"]["step"] == 4 and a["resumed_from"] is None
    assert [x["loss"] for x in b["losses"]] == [x["loss"] for x in a["losses"]]
    assert b["validations"] == a["validations"] and b["best"] == a["best"]
    wa, wb = _projectors(tmp_path / "straight"), _projectors(tmp_path / "resumed")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_killed_cf_run_resumes_mid_epoch_to_the_same_weights(tiny_data, tmp_path):
    def args(out):  # 60 users / batch 8 = 8 steps per epoch: the kill lands mid-epoch 2
        return ["train", "cf", "--data", str(tiny_data), "--out", str(out), "--epochs", "3", "--hidden-size", "16",
                "--maxlen", "10", "--batch-size", "8", "--patience", "0", "--save-state-every", "4", "--no-progress"]

    allmrec(*args(tmp_path / "straight"))
    _kill_then_resume(args(tmp_path / "resumed"), tmp_path / "resumed", kill_after=13)
    a, b = (load_file(str(tmp_path / d / "model.safetensors")) for d in ("straight", "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    la, lb = (json.loads((tmp_path / d / "training_log.json").read_text()) for d in ("straight", "resumed"))
    assert [e["loss"] for e in la["epochs"]] == [e["loss"] for e in lb["epochs"]] and lb["steps"] == la["steps"] == 24


@pytest.mark.slow
def test_killed_stage1_run_resumes_mid_epoch_to_the_same_tables(stage2_inputs, tmp_path):
    data, s1, _ = stage2_inputs
    cf = json.loads((s1 / "config.json").read_text())["cf_model_path"]

    def args(out):
        return ["train", "stage1", "--data", str(data), "--cf", cf, "--out", str(out), "--sbert", "all-minilm-l6-v2",
                "--sbert-train-layers", "1", "--epochs", "2", "--batch-size", "8", "--lr", "1e-3", "--patience", "0",
                "--save-state-every", "3", "--gradient-accumulation-steps", "2", "--no-progress"]

    allmrec(*args(tmp_path / "straight"))
    _kill_then_resume(args(tmp_path / "resumed"), tmp_path / "resumed", kill_after=5)
    a, b = (load_file(str(tmp_path / d / "item_embeddings.safetensors")) for d in ("straight", "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_resume_refuses_changed_arguments(stage2_inputs, tmp_path):
    out = tmp_path / "run"
    allmrec(*_stage2_args(stage2_inputs, out, "--max-steps", "2", "--valid-users", "0", "--save-state-every", "1"))
    proc = allmrec(*_stage2_args(stage2_inputs, out, "--max-steps", "2", "--valid-users", "0", "--batch-size", "2",
                                 "--resume-from", str(tmp_path / "run-state")), expect_rc=2)
    assert "arguments differ from the interrupted run" in proc.stderr and "batch_size" in proc.stderr
    assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------------------- LLM loading
def test_llm_loading_options():
    from allmrec.model.llm_loading import llm_is_placed, llm_load_kwargs

    assert llm_load_kwargs("bfloat16", "cpu") == {"dtype": torch.bfloat16}
    assert llm_load_kwargs("auto", "cpu")["dtype"] == torch.float32
    kw = llm_load_kwargs("auto", "cpu", device_map="auto")
    assert kw["device_map"] == "auto" and llm_is_placed(kw) and not llm_is_placed(llm_load_kwargs())
    for q in ("8bit", "4bit"):  # bitsandbytes needs CUDA: a one-line error, not a crash deep in transformers
        with pytest.raises(AllmrecError, match="needs a CUDA GPU"):
            llm_load_kwargs("auto", "cpu", quantization=q)
    with pytest.raises(AllmrecError, match="--llm-quantization"):
        llm_load_kwargs("auto", "cpu", quantization="3bit")


def test_every_train_command_takes_the_scaling_options():
    from allmrec.cli import build_parser

    parser = build_parser()
    for command in (["train", "cf"], ["train", "stage1"], ["train", "stage2"], ["train", "tallrec"], ["train", "mlpllm"]):
        sub = parser._subparsers._group_actions[0].choices[command[0]]._subparsers._group_actions[0].choices[command[1]]
        flags = {s for a in sub._actions for s in a.option_strings}
        assert {"--gradient-accumulation-steps", "--save-state-every", "--save-state-limit", "--resume-from",
                "--mixed-precision"} <= flags, command
        if command[1] in ("stage2", "tallrec", "mlpllm"):
            assert {"--llm-quantization", "--llm-device-map", "--llm-dtype", "--gradient-checkpointing"} <= flags


def test_auto_precision_is_bf16_only_for_llm_trainers_on_a_cpu_with_native_bf16(monkeypatch):
    """--mixed-precision auto on a CPU: bf16 autocast for the LLM trainers when the CPU lists AVX512-BF16 / AMX,
    fp32 for them elsewhere and for the CF / stage-1 trainers always; the launcher's choice and an explicit value win."""
    import torch

    from allmrec.training import accelerator as acc

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    for native in (True, False):
        monkeypatch.setattr(acc, "cpu_has_native_bf16", lambda native=native: native)
        assert acc.resolve_mixed_precision("auto", cpu_bf16=True) == ("bf16" if native else "no")
        assert acc.resolve_mixed_precision("auto") == "no"
        assert acc.resolve_mixed_precision("no", cpu_bf16=True) == "no"
        assert acc.resolve_mixed_precision("bf16") == "bf16"
        assert acc.resolve_mixed_precision("fp16", cpu_bf16=True) == "no"  # CPU fp16 matmuls are emulated
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")
    monkeypatch.setattr(acc, "cpu_has_native_bf16", lambda: True)
    assert acc.resolve_mixed_precision("auto", cpu_bf16=True) == "no"
