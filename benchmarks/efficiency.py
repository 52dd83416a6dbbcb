"""A-LLMRec vs TALLRec cost on the same LLM, data and machine (the paper's Table 10 / §5.4: A-LLMRec trains
2.53x and infers 1.71x faster than TALLRec).

Measured per model, each phase in its own subprocess (so its peak RSS — and peak CUDA memory on a GPU — is its
own), phases of the two models interleaved so that a load change on a shared machine hits both alike:

* ``train``: the real trainers (``train_stage2`` / ``train_tallrec``, the CLI code paths) for ``--train-steps``
  steps of ``--batch-size`` users, no validation → seconds per step, samples/s, the time of one epoch
  extrapolated from the steps per epoch (every user with 2+ training items, ``ceil(users / batch)``) and of the
  5-epoch budget, trainable parameters;
* ``rank`` / ``generate``: ``rank_scores`` / ``generate_outputs`` (what ``allmrec evaluate`` runs) on
  ``--users`` test users in batches of ``--infer-batch``, after an untimed one-user warm-up batch → seconds
  per batch (and, for generate, decoding steps per batch: an untrained model may not stop early, so the
  per-step time is the like-for-like number).

    python benchmarks/efficiency.py                       # <= ~10 min on 2 CPU cores: ml-100k, SmolLM2, few steps
    python benchmarks/efficiency.py --data /tmp/ml100k --cf runs/cf/sasrec --stage1 runs/stage1 \\
        --train-steps 50 --users 100 --threads 2 --json efficiency.json

Threads: one per phase by default. On a machine whose cores are busy with other work, more torch threads than
free cores make OpenMP threads spin-wait on each other (measured here: a SmolLM2 decoding step took 0.36 s
with 1 thread and 4.8 s with 2 on 2 cores shared with 3 other jobs); raise ``--threads`` on an idle machine.

Without --cf an untrained SASRec (d=50) and without --stage1 random stage-1 tables in (0, 1)^128 are used: the
cost of stage 2 does not depend on how well they were trained. A-LLMRec's number is stage 2 only (stages 0/1 —
SASRec and the autoencoders — are small and trained once; the paper's comparison is also of the LLM stage).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import peak_memory, prepare_inputs  # noqa: E402

MODELS = ("allmrec", "tallrec")
PHASES = ("train", "rank", "generate")
PAPER = {"train": 2.53, "inference": 1.71}


# ---------------------------------------------------------------------------------------------- workers
def _train(args) -> dict:
    common = dict(data=args.data, llm=args.llm, out=args.model, max_steps=args.train_steps, batch_size=args.batch_size,
                  valid_users=0, progress=False, overwrite=True, seed=args.seed, mixed_precision=args.mixed_precision,
                  llm_dtype=args.llm_dtype)
    if args.which == "allmrec":
        from allmrec.model.training import Stage2TrainingArguments, train_stage2

        log = train_stage2(Stage2TrainingArguments(stage1=args.stage1, recipe=args.recipe, **common))
    else:
        from allmrec.baselines.training import TallRecTrainingArguments, train_tallrec

        log = train_tallrec(TallRecTrainingArguments(**common))
    seconds = log["timings"]["train"]
    per_step = seconds / log["steps"]
    return {
        "steps": log["steps"],
        "samples": log["samples_seen"],
        "seconds": seconds,
        "seconds_per_step": round(per_step, 4),
        "samples_per_second": log["train_samples_per_second"],
        "steps_per_epoch": log["steps_per_epoch"],
        "epoch_seconds": round(per_step * log["steps_per_epoch"], 1),
        "trainable_parameters": log["trainable_parameters"],
        "load_seconds": log["timings"]["load"],
    }


def _load(args):
    if args.which == "allmrec":
        from allmrec.model.inference import load_for_inference

        return load_for_inference(args.model)
    from allmrec.baselines.text_model import load_tallrec

    return load_tallrec(args.model, merge_lora=args.merge_lora)


def _infer(args) -> dict:
    from allmrec.data.dataset import PreparedDataset
    from allmrec.model.inference import generate_outputs, rank_scores, subset_rows

    ds = PreparedDataset.load(args.data)
    start = time.perf_counter()
    model = _load(args)
    load = time.perf_counter() - start
    rows = subset_rows(ds.eval_rows("test"), args.users + 1, args.seed)
    warm = {k: v[:1] for k, v in rows.items()}  # one user: first-call allocations and lazy set-up, untimed
    timed = {k: v[1:] for k, v in rows.items()}
    widths: list[int] = []
    if args.worker == "generate":
        original = model.generate_answers

        def recording(*a, **kw):  # decoding steps per batch = width of the new tokens
            new = original(*a, **kw)
            widths.append(int(new.shape[1]))
            return new

        model.generate_answers = recording

    def run(part):
        if args.worker == "generate":
            return generate_outputs(model, part, ds.titles, args.infer_batch, progress=False, stop_at_answer=args.stop_at_answer)
        return rank_scores(model, part, ds.titles, args.infer_batch, progress=False)

    run(warm)
    widths.clear()
    start = time.perf_counter()
    run(timed)
    seconds = time.perf_counter() - start
    n = len(timed["user_id"])
    batches = math.ceil(n / args.infer_batch)
    out = {"users": n, "batches": batches, "seconds": round(seconds, 3), "seconds_per_batch": round(seconds / batches, 4),
           "users_per_second": round(n / seconds, 4), "load_seconds": round(load, 3)}
    if widths:
        out["decode_steps_per_batch"] = round(sum(widths) / len(widths), 2)
        out["seconds_per_decode_step"] = round(seconds / sum(widths), 5)
    return out


def _worker(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    result = _train(args) if args.worker == "train" else _infer(args)
    result.update({"model": args.which, "phase": args.worker}, **peak_memory())
    print("RESULT " + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------------------------- driver
def _run_phase(args, which: str, phase: str, model_dir: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", phase, "--which", which, "--model", model_dir, "--data", args.data,
           "--stage1", args.stage1, "--llm", args.llm, "--train-steps", str(args.train_steps),
           "--batch-size", str(args.batch_size), "--users", str(args.users), "--infer-batch", str(args.infer_batch),
           "--threads", str(args.threads), "--seed", str(args.seed), "--recipe", args.recipe,
           "--mixed-precision", args.mixed_precision, "--llm-dtype", args.llm_dtype]
    if args.stop_at_answer:
        cmd.append("--stop-at-answer")
    if args.merge_lora:
        cmd.append("--merge-lora")
    print(f"[efficiency] {which} {phase} ...", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{which} {phase} failed (exit {proc.returncode})")
    return json.loads(lines[-1][len("RESULT "):])


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(results: dict, header: str) -> str:
    """Rows = measurements, columns = A-LLMRec, TALLRec, TALLRec/A-LLMRec and the paper's ratio."""
    a, t = results["allmrec"], results["tallrec"]

    def ratio(x, y):
        return None if not x or not y else y / x

    rows = []
    if "train" in a and "train" in t:
        ta, tt = a["train"], t["train"]
        rows += [
            ("train: s / step", ta["seconds_per_step"], tt["seconds_per_step"], ratio(ta["seconds_per_step"], tt["seconds_per_step"]), PAPER["train"], ".3f"),
            ("train: samples / s", ta["samples_per_second"], tt["samples_per_second"], ratio(tt["samples_per_second"], ta["samples_per_second"]), None, ".3f"),
            (f"train: s / epoch ({ta['steps_per_epoch']} steps, extrap.)", ta["epoch_seconds"], tt["epoch_seconds"], ratio(ta["epoch_seconds"], tt["epoch_seconds"]), PAPER["train"], ".0f"),
            ("train: 5-epoch budget, h (extrap.)", ta["epoch_seconds"] * 5 / 3600, tt["epoch_seconds"] * 5 / 3600, None, None, ".2f"),
            ("train: trainable parameters", ta["trainable_parameters"], tt["trainable_parameters"], ratio(ta["trainable_parameters"], tt["trainable_parameters"]), None, ",d"),
            ("train: peak RSS, MB", ta["peak_rss_mb"], tt["peak_rss_mb"], ratio(ta["peak_rss_mb"], tt["peak_rss_mb"]), None, ".0f"),
        ]
        if "peak_cuda_mb" in ta:
            rows.append(("train: peak CUDA, MB", ta["peak_cuda_mb"], tt["peak_cuda_mb"], ratio(ta["peak_cuda_mb"], tt["peak_cuda_mb"]), None, ".0f"))
    for phase in ("generate", "rank"):
        if phase in a and phase in t:
            pa, pt = a[phase], t[phase]
            paper = PAPER["inference"] if phase == "generate" else None
            rows += [
                (f"{phase}: s / batch of {results['infer_batch']}", pa["seconds_per_batch"], pt["seconds_per_batch"], ratio(pa["seconds_per_batch"], pt["seconds_per_batch"]), paper, ".3f"),
                (f"{phase}: peak RSS, MB", pa["peak_rss_mb"], pt["peak_rss_mb"], ratio(pa["peak_rss_mb"], pt["peak_rss_mb"]), None, ".0f"),
            ]
            if phase == "generate":
                rows += [
                    ("generate: decoding steps / batch", pa["decode_steps_per_batch"], pt["decode_steps_per_batch"], None, None, ".1f"),
                    ("generate: s / decoding step", pa["seconds_per_decode_step"], pt["seconds_per_decode_step"], ratio(pa["seconds_per_decode_step"], pt["seconds_per_decode_step"]), None, ".4f"),
                ]
    width = max(len(r[0]) for r in rows) + 2
    lines = [header, f"{'':<{width}}{'A-LLMRec':>14}{'TALLRec':>14}{'TALLRec/A-LLMRec':>18}{'paper':>8}"]
    for name, va, vt, r, paper, spec in rows:
        lines.append(f"{name:<{width}}{_fmt(va, spec):>14}{_fmt(vt, spec):>14}"
                     f"{_fmt(r, '.2f') + ('x' if r is not None else ''):>18}{(_fmt(paper, '.2f') + 'x') if paper else '':>8}")
    lines.append("ratio = TALLRec cost / A-LLMRec cost (> 1: A-LLMRec is cheaper); paper = Table 10 / §5.4 "
                 "(OPT-6.7B, NVIDIA GPU)")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="prepared dataset (default: ml-100k prepared into a temp dir)")
    p.add_argument("--cf", help="CF checkpoint for A-LLMRec (default: an untrained SASRec, d=50)")
    p.add_argument("--stage1", help="stage-1 output directory for A-LLMRec (default: random tables)")
    p.add_argument("--llm", default="smollm2-135m-instruct", help="the LLM both models use")
    p.add_argument("--phases", default=",".join(PHASES), help="comma-separated subset of train,rank,generate")
    from allmrec.model.recipes import DEFAULT_RECIPE, RECIPE_NAMES  # light: no torch

    p.add_argument("--recipe", default=DEFAULT_RECIPE, choices=RECIPE_NAMES,
                   help="A-LLMRec's stage-2 recipe (allmrec train stage2 --recipe): what its step and rank pass cost "
                        "(index-lora: one-label answers, one forward pass per user in rank mode)")
    p.add_argument("--mixed-precision", default="auto", choices=("auto", "no", "bf16"),
                   help="training autocast of both models (allmrec train ... --mixed-precision): auto picks bf16 on a "
                        "CPU with AVX512-BF16/AMX, no = fp32")
    p.add_argument("--llm-dtype", default="auto", choices=("auto", "float32", "bfloat16"),
                   help="weight dtype of the LLM during training (allmrec train ... --llm-dtype; auto: fp32 on a CPU)")
    p.add_argument("--train-steps", type=int, default=3, help="training steps to time (paper budget: 5 epochs)")
    p.add_argument("--batch-size", type=int, default=4, help="training users per step (paper: 4 for both)")
    p.add_argument("--users", type=int, default=4, help="timed test users per inference mode (after a 1-user warm-up)")
    p.add_argument("--infer-batch", type=int, default=4, help="users per inference batch")
    p.add_argument("--stop-at-answer", action="store_true", help="generate: end each answer at its closing quote")
    p.add_argument("--merge-lora", action="store_true",
                   help="TALLRec inference with the LoRA update merged into the base weights (default: unmerged adapter)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads per phase (see the module docstring)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the measurements here")
    # internal: run one phase of one model in this process
    p.add_argument("--worker", choices=PHASES, help=argparse.SUPPRESS)
    p.add_argument("--which", choices=MODELS, help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.worker:
        _worker(args)
        return 0

    phases = [x for x in args.phases.split(",") if x]
    if any(x not in PHASES for x in phases) or not phases:
        raise SystemExit(f"--phases must be a non-empty subset of {','.join(PHASES)}")
    if "train" not in phases:
        phases = ["train"] + phases  # inference needs a checkpoint (a few steps suffice)
    results: dict = {"allmrec": {}, "tallrec": {}}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prepare_inputs(args, tmp)
        for phase in phases:
            for which in MODELS:  # interleaved: the machine's load affects both models alike
                results[which][phase] = _run_phase(args, which, phase, str(tmp / which))

    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores), {args.threads} torch threads"
    results.update({"llm": args.llm, "data": args.data, "device": device, "batch_size": args.batch_size,
                    "infer_batch": args.infer_batch, "train_steps": args.train_steps, "users": args.users,
                    "stop_at_answer": args.stop_at_answer, "recipe": args.recipe, "mixed_precision": args.mixed_precision, "llm_dtype": args.llm_dtype, "merge_lora": args.merge_lora, "wall_seconds": round(time.perf_counter() - start, 1)})
    header = (f"A-LLMRec (stage 2, recipe {args.recipe}) vs TALLRec (LoRA), LLM {args.llm}, data {Path(args.data).name}, {device}, "
              f"training precision {args.mixed_precision}, LLM weights {args.llm_dtype}; "
              f"{args.train_steps} training steps of {args.batch_size}, {args.users} users per inference mode"
              + ("; TALLRec LoRA merged for inference" if args.merge_lora else ""))
    print("\n" + format_table(results, header))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
