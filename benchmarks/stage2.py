"""Stage-2 cost on ml-100k with a real LLM (default SmolLM2-135M-Instruct): training samples/s, inference
users/s in generate vs rank mode, and peak memory of each phase.

Each phase runs in its own subprocess (its peak RSS, and peak CUDA memory on GPU, is its own):

* ``train``: ``train_stage2`` for ``--train-steps`` steps of ``--batch-size`` users (the CLI code path;
  no validation), samples/s over all steps;
* ``rank`` / ``generate``: ``evaluate_model`` on a seeded subset of ``--users`` test users of the
  checkpoint the train phase wrote, users/s over the scoring loop (model loading excluded).

    python benchmarks/stage2.py                       # ml-100k prepared in a temp dir, untrained SASRec
    python benchmarks/stage2.py --data /tmp/ml100k --cf runs/cf/sasrec --stage1 runs/stage1 --json bench.json

Without --cf an untrained SASRec (d=50) is used and without --stage1 random stage-1 tables in (0, 1)^128
(the stage-1 encoder ends in a sigmoid): the cost of stage 2 does not depend on how well they were trained
(except generation length: a model that has learnt the answer format stops at EOS, an untrained one runs
to ``max_new_tokens``; ``--stop-at-answer`` ends answers at their closing quote).

On a machine whose cores are shared with other jobs use ``--threads 1``: with 2 OpenMP threads on busy
cores every parallel region waits for a descheduled thread, and a decode step of SmolLM2 went from 0.11 s
to 2.4 s. The table also prints each phase's process CPU time, which neighbours affect less than wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import cpu_seconds, peak_memory, prepare_inputs  # noqa: E402

PHASES = ("train", "rank", "generate")


def _worker(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    if args.worker == "train":
        from allmrec.model.training import Stage2TrainingArguments, train_stage2

        cpu0 = cpu_seconds()
        log = train_stage2(Stage2TrainingArguments(
            data=args.data, stage1=args.stage1, llm=args.llm, out=args.model, max_steps=args.train_steps,
            batch_size=args.batch_size, valid_users=0, progress=False, overwrite=True, seed=args.seed,
            gradient_checkpointing=args.gradient_checkpointing,
        ))
        result = {
            "phase": "train",
            "steps": log["steps"],
            "samples": log["samples_seen"],
            "seconds": log["timings"]["train"],
            "samples_per_second": log["train_samples_per_second"],
            "trainable_parameters": log["trainable_parameters"],
            "load_seconds": log["timings"]["load"],
            # process CPU time of load + train (wall-clock time on a shared machine depends on the neighbours)
            "cpu_seconds_incl_load": round(cpu_seconds() - cpu0, 2),
        }
    else:
        from allmrec.data.dataset import PreparedDataset
        from allmrec.model.inference import load_for_inference, evaluate_model

        start = time.perf_counter()
        model = load_for_inference(args.model)
        load = time.perf_counter() - start
        cpu0 = cpu_seconds()
        res = evaluate_model(model, PreparedDataset.load(args.data), split="test", mode=args.worker,
                             batch_size=args.infer_batch, max_users=args.users, progress=False,
                             stop_at_answer=args.stop_at_answer)
        seconds = res["timings"][args.worker]
        result = {
            "phase": args.worker,
            "users": res["n_users"],
            "seconds": seconds,
            "users_per_second": round(res["n_users"] / seconds, 4),
            "hit@1": res["metrics"]["hit@1"],
            "stop_at_answer": bool(args.stop_at_answer) if args.worker == "generate" else None,
            "load_seconds": round(load, 3),
            "cpu_seconds": round(cpu_seconds() - cpu0, 2),
        }
    result.update(peak_memory())
    print("RESULT " + json.dumps(result), flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="prepared dataset (default: ml-100k prepared into a temp dir)")
    p.add_argument("--cf", help="CF checkpoint (default: an untrained SASRec, d=50)")
    p.add_argument("--stage1", help="stage-1 output directory (default: random tables)")
    p.add_argument("--llm", default="smollm2-135m-instruct", help="frozen LLM")
    p.add_argument("--phases", default=",".join(PHASES), help="comma-separated subset of train,rank,generate")
    p.add_argument("--train-steps", type=int, default=10, help="training steps to time")
    p.add_argument("--batch-size", type=int, default=4, help="training users per step (paper: 4)")
    p.add_argument("--users", type=int, default=16, help="test users scored per inference mode")
    p.add_argument("--infer-batch", type=int, default=4, help="users per inference batch")
    p.add_argument("--gradient-checkpointing", action="store_true", help="checkpoint the frozen LLM in training")
    p.add_argument("--stop-at-answer", action="store_true", help="generate: end each answer at its closing quote")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the results here")
    # internal: run one phase in this process
    p.add_argument("--worker", choices=PHASES, help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.worker:
        _worker(args)
        return 0

    phases = [x for x in args.phases.split(",") if x]
    if any(x not in PHASES for x in phases):
        raise SystemExit(f"--phases must be a subset of {','.join(PHASES)}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prepare_inputs(args, tmp)
        model_dir = str(tmp / "stage2")
        if any(x != "train" for x in phases) and "train" not in phases:
            phases = ["train"] + phases  # inference needs a checkpoint
        for phase in phases:
            cmd = [sys.executable, __file__, "--worker", phase, "--model", model_dir, "--data", args.data,
                   "--stage1", args.stage1, "--llm", args.llm, "--train-steps", str(args.train_steps),
                   "--batch-size", str(args.batch_size), "--users", str(args.users), "--infer-batch", str(args.infer_batch),
                   "--threads", str(args.threads), "--seed", str(args.seed)]
            if args.gradient_checkpointing:
                cmd.append("--gradient-checkpointing")
            if args.stop_at_answer:
                cmd.append("--stop-at-answer")
            proc = subprocess.run(cmd, capture_output=True, text=True)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode != 0 or not lines:
                sys.stderr.write(proc.stderr[-4000:])
                raise SystemExit(f"phase {phase} failed (exit {proc.returncode})")
            results.append(json.loads(lines[-1][len("RESULT "):]))

    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {args.threads} threads"
    print(f"\nA-LLMRec stage 2, LLM {args.llm}, {device}")
    print(f"load average while measuring: {os.getloadavg()[0]:.2f} (wall-clock rates assume the cores were free)")
    print(f"{'phase':<10}{'work':>22}{'seconds':>10}{'throughput':>22}{'CPU s':>10}{'peak RSS MB':>13}"
          + ("{:>14}".format("peak CUDA MB") if torch.cuda.is_available() else ""))
    for r in results:
        if r["phase"] == "train":
            work, rate = f"{r['steps']} steps x {args.batch_size}", f"{r['samples_per_second']:.3f} samples/s"
        else:
            work, rate = f"{r['users']} users", f"{r['users_per_second']:.3f} users/s"
        cpu = r.get("cpu_seconds", r.get("cpu_seconds_incl_load"))
        line = f"{r['phase']:<10}{work:>22}{r['seconds']:>10.2f}{rate:>22}{cpu:>10.1f}{r['peak_rss_mb']:>13.0f}"
        if "peak_cuda_mb" in r:
            line += f"{r['peak_cuda_mb']:>14.0f}"
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps({"llm": args.llm, "device": device, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
