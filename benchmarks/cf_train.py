"""Benchmark SASRec training: seconds per epoch, validation time and peak memory.

    python benchmarks/cf_train.py                         # ml-100k (prepared into a temp dir)
    python benchmarks/preprocess.py --workdir /tmp/allmrec-bench        # synthetic Movies-scale data
    python benchmarks/cf_train.py --ml100k /tmp/ml100k --data /tmp/allmrec-bench/prepared --max-steps 50

Each (dataset, loss) runs in its own subprocess so that peak RSS (``ru_maxrss``) belongs to that
configuration alone. Reported per run: trainable users (samples/epoch), steps per epoch, the time
to build the samples (vectorised, once), mean seconds per training epoch (negatives redrawn
each epoch included; with ``--max-steps`` extrapolated from that many steps plus the timed
negative redraw), seconds for one validation pass over the stored candidates, and peak RSS.
Threads: ``--threads`` (default 1, so numbers from a shared machine are comparable).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def worker(data: str, loss: str, epochs: int, threads: int, batch_size: int, max_steps: int | None) -> dict:
    import torch

    torch.set_num_threads(threads)
    from allmrec.cf.training import CFTrainer, CFTrainingArguments

    with tempfile.TemporaryDirectory() as tmp:
        args = CFTrainingArguments(data=data, out=str(Path(tmp) / "unused"), model="sasrec", loss=loss,
                                   batch_size=batch_size, progress=False)
        start = time.perf_counter()
        trainer = CFTrainer(args)
        build = time.perf_counter() - start
        steps = len(trainer.loader)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if max_steps is None or max_steps >= steps:
            for epoch in range(1, epochs + 1):
                trainer.train_epoch(epoch)
            scale, estimated = 1.0 / epochs, False
            neg_wall = neg_cpu = 0.0
        else:
            # A slice of the epoch: the per-epoch negative redraw is timed on its own, the
            # per-step cost from `max_steps` real steps, and the epoch extrapolated from both.
            trainer.samples.set_epoch(1)
            neg_wall, neg_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            cpu0, wall0 = time.process_time(), time.perf_counter()
            trainer.train_epoch(1, max_steps=max_steps)  # redraws negatives again: subtract once
            scale, estimated = steps / max_steps, True
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        if estimated:
            epoch_s = neg_wall + (wall - neg_wall) * scale
            epoch_cpu = neg_cpu + (cpu - neg_cpu) * scale
        else:
            epoch_s, epoch_cpu = wall * scale, cpu * scale
        start = time.perf_counter()
        trainer.validate()
        valid = time.perf_counter() - start
    return {
        "dataset": trainer.dataset.name,
        "users": len(trainer.samples),
        "items": trainer.dataset.num_items,
        "loss": loss,
        "steps_per_epoch": steps,
        "build_s": round(build, 2),
        "epoch_s": f"{epoch_s:.2f}" + (f" (est. from {max_steps} steps)" if estimated else ""),
        "epoch_cpu_s": round(epoch_cpu, 2),
        "valid_s": round(valid, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads": threads,
    }


def _ensure_ml100k(path: str | None) -> str:
    if path:
        return path
    from allmrec.data.prepare import PrepareOptions, prepare

    out = Path(tempfile.mkdtemp(prefix="allmrec-bench-")) / "ml100k"
    prepare(PrepareOptions(source="ml-100k"), out, progress=False)
    return str(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ml100k", help="prepared ml-100k directory (default: prepare one into a temp dir)")
    p.add_argument("--data", action="append", default=[], help="another prepared dataset (e.g. synthetic Movies-scale); repeatable")
    p.add_argument("--loss", nargs="+", default=["bce", "ce"], choices=["bce", "ce"], help="losses to time")
    p.add_argument("--epochs", type=int, default=3, help="epochs timed per run (mean reported)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--max-steps", type=int, default=None,
                   help="time only this many steps per epoch and extrapolate (for Movies-scale data on a CPU)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--json", help="also write the rows to this JSON file")
    p.add_argument("--worker", nargs=2, metavar=("DATA", "LOSS"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        print(json.dumps(worker(a.worker[0], a.worker[1], a.epochs, a.threads, a.batch_size, a.max_steps)))
        return 0

    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    rows = []
    for data in [_ensure_ml100k(a.ml100k), *a.data]:
        for loss in a.loss:
            cmd = [sys.executable, __file__, "--worker", data, loss, "--epochs", str(a.epochs), "--threads", str(a.threads),
                   "--batch-size", str(a.batch_size)] + (["--max-steps", str(a.max_steps)] if a.max_steps else [])
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                print(proc.stderr[-2000:], file=sys.stderr)
                return proc.returncode
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    cols = ["dataset", "users", "items", "loss", "steps_per_epoch", "build_s", "epoch_s", "epoch_cpu_s", "valid_s", "peak_rss_mb"]
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in cols]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print("  ".join(str(r[c]).ljust(w) for c, w in zip(cols, widths)))
    print(f"(SASRec d=50, 2 blocks, maxlen 50, batch {a.batch_size}, {a.threads} thread(s), mean of {a.epochs} epochs; "
          f"epoch_cpu_s = process CPU time, the figure to trust on a shared machine)")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
