"""Stage-1 cost on ml-100k: time per epoch and peak memory with SBERT fully fine-tuned, only its top N
layers fine-tuned (lower layers cached), or frozen.

Each mode runs in its own subprocess, so its peak RSS (and peak CUDA memory on GPU) is its own.
Timings cover the training steps of an epoch (validation and export excluded); "setup" includes
tokenising the catalogue and, for top-N / frozen, computing the cache once.

    python benchmarks/stage1.py --data /tmp/ml100k --cf runs/cf/sasrec-bce
    python benchmarks/stage1.py --modes full,top2,frozen --epochs 2 --json runs/stage1/bench.json

Without --cf an untrained SASRec (d=50, the paper's) is used: the cost of stage 1 does not depend on how
well the CF model was trained. Without --data, ml-100k is prepared into a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

MODES = {"full": None, "frozen": 0}  # plus "topN" → N


def _train_layers(mode: str) -> int | None:
    if mode in MODES:
        return MODES[mode]
    if mode.startswith("top") and mode[3:].isdigit():
        return int(mode[3:])
    raise SystemExit(f"unknown mode {mode!r}: use full, frozen or topN (e.g. top2)")


def _worker(args) -> None:
    """Run stage 1 in this process and print one JSON line with its timings and peak memory."""
    import torch

    torch.set_num_threads(args.threads)
    from allmrec.alignment.training import Stage1TrainingArguments, train_stage1

    with tempfile.TemporaryDirectory() as tmp:
        log = train_stage1(
            Stage1TrainingArguments(
                data=args.data, cf=args.cf, out=str(Path(tmp) / "s1"), epochs=args.epochs, batch_size=args.batch_size,
                sbert=args.sbert, sbert_train_layers=_train_layers(args.worker), patience=0, seed=args.seed,
                show_progress=False, mixed_precision=args.mixed_precision,
            )
        )
    epochs = log["epochs"]
    result = {
        "mode": args.worker,
        "trainable_parameters": log["trainable_parameters"],
        "setup_seconds": log["timings"]["setup"],
        "epoch_seconds": [e["train_seconds"] for e in epochs],
        "seconds_per_epoch": sum(e["train_seconds"] for e in epochs) / len(epochs),
        "steps_per_epoch": epochs[0]["steps"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
        "device": log["device"],
        "mixed_precision": log["mixed_precision"],
        "train_match_loss_last_epoch": epochs[-1]["train"].get("match"),
        "text_to_joint_acc@1": log["alignment_report"]["retrieval"]["text_to_joint"]["acc@1"],
    }
    print("RESULT " + json.dumps(result), flush=True)


def _untrained_sasrec(data: str, out: Path) -> str:
    import torch

    from allmrec.cf import SASRecConfig, SASRecModel
    from allmrec.data.dataset import PreparedDataset

    torch.manual_seed(0)
    ds = PreparedDataset.load(data)
    SASRecModel(SASRecConfig(num_items=ds.num_items)).save_pretrained(out)
    return str(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="prepared dataset (default: ml-100k prepared into a temp dir)")
    p.add_argument("--cf", help="CF checkpoint (default: an untrained SASRec)")
    p.add_argument("--sbert", default="all-minilm-l6-v2", help="SBERT model (default: the bundled MiniLM)")
    p.add_argument("--modes", default="full,top2,frozen", help="comma-separated: full, frozen, topN")
    p.add_argument("--epochs", type=int, default=1, help="epochs per mode (the mean is reported)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch CPU threads")
    p.add_argument("--mixed-precision", default="auto", choices=("auto", "no", "fp16", "bf16"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    if args.worker:
        _worker(args)
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        if args.data is None:
            from allmrec.data.prepare import PrepareOptions, prepare

            args.data = str(Path(tmp) / "ml100k")
            prepare(PrepareOptions(source="ml-100k"), args.data, progress=False)
        if args.cf is None:
            args.cf = _untrained_sasrec(args.data, Path(tmp) / "sasrec")
        results = []
        for mode in args.modes.split(","):
            _train_layers(mode)
            cmd = [sys.executable, __file__, "--worker", mode, "--data", args.data, "--cf", args.cf, "--sbert", args.sbert,
                   "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--threads", str(args.threads),
                   "--mixed-precision", args.mixed_precision, "--seed", str(args.seed)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode != 0 or not lines:
                sys.stderr.write(proc.stderr[-4000:])
                raise SystemExit(f"mode {mode} failed (exit {proc.returncode})")
            results.append(json.loads(lines[-1][len("RESULT "):]))
            print(f"  {mode}: {results[-1]['seconds_per_epoch']:.1f} s/epoch", file=sys.stderr, flush=True)

    header = f"{'mode':<8} {'trainable':>11} {'setup s':>8} {'s/epoch':>8} {'steps':>6} {'peak RSS MB':>12} {'peak CUDA MB':>13} {'q→e acc@1':>10}"
    print(f"stage 1 on {args.data} | SBERT {args.sbert} | CF {args.cf} | {args.epochs} epoch(s), batch {args.batch_size}, "
          f"{args.threads} thread(s), device {results[0]['device']}, precision {results[0]['mixed_precision']}")
    print(header)
    print("-" * len(header))
    for r in results:
        cuda = f"{r['peak_cuda_mb']:.0f}" if r["peak_cuda_mb"] is not None else "-"
        print(f"{r['mode']:<8} {r['trainable_parameters']:>11,} {r['setup_seconds']:>8.1f} {r['seconds_per_epoch']:>8.1f} "
              f"{r['steps_per_epoch']:>6} {r['peak_rss_mb']:>12.0f} {cuda:>13} {r['text_to_joint_acc@1']:>10.3f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
