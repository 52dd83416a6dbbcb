"""Benchmark `allmrec data prepare` on a synthetic Amazon-2018 file at Movies-and-TV scale.

Generates (once, cached) ``<workdir>/Movies_Synth.json.gz`` with ~3.4 M reviews from 300 K users on
60 K items (power-law item popularity, every review carrying a ~200-character text like the real
dump) plus ``meta_Movies_Synth.json.gz`` with HTML descriptions, then times the full preparation
(exact iterative k-core, candidates, scenario labels, atomic write) in a fresh process and reports
wall time and peak RSS.

    python benchmarks/preprocess.py [--workdir /tmp/allmrec-bench] [--users 300000] [--items 60000]

Targets (issue #2): < 30 s and < 2 GB peak RSS on a 2-core machine. The authors' one-pass,
pure-Python script takes about 2 minutes and 2.9 GB on such a file.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def generate(workdir: Path, n_users: int, n_items: int, mean_len: float, seed: int) -> tuple[Path, Path]:
    reviews, meta = workdir / "Movies_Synth.json.gz", workdir / "meta_Movies_Synth.json.gz"
    if reviews.exists() and meta.exists():
        return reviews, meta
    workdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lengths = 5 + rng.geometric(1.0 / (mean_len - 4), size=n_users) - 1
    total = int(lengths.sum())
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.8
    items = rng.choice(n_items, size=total, p=pop / pop.sum())
    times = rng.integers(1_100_000_000, 1_530_000_000, size=total)
    users = np.repeat(np.arange(n_users), lengths)
    perm = rng.permutation(total)  # real dumps are grouped by item, not user: shuffle
    filler = "This movie was great, the acting and the story were excellent and I would watch it again. " * 2
    t0 = time.perf_counter()
    tmp = reviews.with_suffix(".tmp")
    with gzip.open(tmp, "wt", compresslevel=1, encoding="utf-8") as f:
        for k in perm:
            f.write(
                '{"overall": %d.0, "verified": true, "reviewTime": "01 1, 2010", "reviewerID": "U%07d", "asin": "B%09d", '
                '"style": {"Format:": " DVD"}, "reviewerName": "Name", "reviewText": "%s", "summary": "Five Stars", '
                '"unixReviewTime": %d}\n' % (1 + k % 5, users[k], items[k], filler, times[k])
            )
    os.replace(tmp, reviews)
    tmp = meta.with_suffix(".tmp")
    with gzip.open(tmp, "wt", compresslevel=1, encoding="utf-8") as f:
        for i in range(n_items):
            rec = {"asin": "B%09d" % i, "title": f"Synthetic Movie {i} &amp; Friends",
                   "description": [f"<p>A <b>film</b> number {i}.</p>", "More."], "category": ["Movies & TV"], "price": "$9.99"}
            f.write(json.dumps(rec) + "\n")
    os.replace(tmp, meta)
    print(f"generated {total:,} reviews in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return reviews, meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="/tmp/allmrec-bench")
    ap.add_argument("--users", type=int, default=300_000)
    ap.add_argument("--items", type=int, default=60_000)
    ap.add_argument("--mean-len", type=float, default=11.3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    workdir = Path(args.workdir)
    reviews, meta = generate(workdir, args.users, args.items, args.mean_len, args.seed)
    out = workdir / "prepared"
    cmd = [sys.executable, "-m", "allmrec", "data", "prepare", "--source", str(reviews), "--meta", str(meta),
           "--out", str(out), "--overwrite"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(proc.stderr)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB → MiB
    m = json.loads((out / "manifest.json").read_text())
    c, tm = m["counts"], m["timings"]
    rows = [
        ("input reviews", f"{c['raw_interactions']:,} ({reviews.stat().st_size / 2**20:.0f} MiB gz)"),
        ("kept users / items", f"{c['users']:,} / {c['items']:,}"),
        ("kept interactions", f"{c['interactions']:,}"),
        ("k-core iterations", str(c["kcore_iterations"])),
        ("stage seconds", ", ".join(f"{k} {v:.1f}" for k, v in tm.items())),
        ("wall time (process)", f"{wall:.1f} s   (target < 30 s)"),
        ("peak RSS", f"{peak:.0f} MiB   (target < 2048 MiB)"),
        ("cores", str(os.cpu_count())),
    ]
    w = max(len(r[0]) for r in rows)
    print("allmrec data prepare — synthetic Amazon-2018 Movies-scale benchmark")
    for k, v in rows:
        print(f"  {k:<{w}}  {v}")


if __name__ == "__main__":
    main()
