"""Does the LLM add to the ranking its soft tokens already encode? ``allmrec evaluate --match-fusion W``, swept.

A-LLMRec trained with a matching loss (the listwise and index-lora recipes) has two rankers over the same
candidates: the LLM's answer likelihoods and its own matching head, cos(O_u, O_c) / τ. This script scores both once
per user (one LLM pass, one matching pass), then for each W ranks by log softmax(LLM) + W · log softmax(match):
W = 0 is the LLM alone, a large W the matching head alone. W is chosen on seeded validation users and reported on
seeded test users (overall, warm, mid, cold), with the paired 95 % interval against any results files given with
``--compare`` (the same test users and candidates: e.g. the SASRec inside the model).

    python benchmarks/match_fusion.py --model runs/allmrec --data D --valid-users 500 --test-users 1000 \\
        --compare SASRec=results/sasrec.json --json fusion.json

The numbers equal ``allmrec evaluate --mode rank --match-fusion W`` on the same users (that command recomputes the
LLM scores for each W; this one shares them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

WEIGHTS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 1e6)


def two_scores(model, rows, titles, item_embedding=None, batch_size=4):
    """(LLM log-likelihoods, matching-head scores), both ``(N, C)``, in row order."""
    import torch

    from allmrec.model.inference import _RowEncoder, rank_scores

    llm = rank_scores(model, rows, titles, batch_size, item_embedding, progress=False)
    enc, cands = _RowEncoder(model, titles), np.asarray(rows["candidates"], dtype=np.int64)
    match = np.zeros(cands.shape, dtype=np.float64)
    with torch.no_grad():
        for start in range(0, len(cands), 256):
            idx = np.arange(start, min(start + 256, len(cands)))
            b = enc.batch(rows, idx)
            user = model.user_representation(b["cf_input_ids"], b.get("user_ids"))
            match[idx] = model.match_scores(user, torch.as_tensor(cands[idx]), item_embedding).double().cpu().numpy()
    return llm, match


def fused_hits(llm: np.ndarray, match: np.ndarray, target_index, weight: float) -> np.ndarray:
    """Per-user Hit@1 of log softmax(LLM) + weight · log softmax(match) (ties against the target)."""
    from allmrec.evaluation.metrics import hit_at_k, ranks_from_scores

    def log_softmax(x):
        x = x - x.max(axis=1, keepdims=True)
        return x - np.log(np.exp(x).sum(axis=1, keepdims=True))

    scores = log_softmax(llm) + weight * log_softmax(match)
    return hit_at_k(ranks_from_scores(scores, target_index), 1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="A-LLMRec / MLP-LLM checkpoint trained with a matching loss")
    p.add_argument("--data", required=True, help="the prepared dataset it was trained on")
    p.add_argument("--valid-users", type=int, default=500, help="seeded validation users that choose W")
    p.add_argument("--test-users", type=int, default=1000, help="seeded test users (0 = all), as allmrec evaluate --max-users")
    p.add_argument("--item-embedding", choices=("cf", "text", "auto"), default=None, help="F_I input (default: the checkpoint's)")
    p.add_argument("--weights", default=",".join(str(w) for w in WEIGHTS), help="comma list of W to sweep")
    p.add_argument("--compare", action="append", default=[], metavar="NAME=RESULTS.json",
                   help="a results file of another model on the same test users (paired interval against it)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--json", help="also write the table here")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch

    from allmrec.data.dataset import PreparedDataset
    from allmrec.evaluation.statistics import bootstrap_interval, paired_difference
    from allmrec.evaluation.subsets import subset_rows
    from allmrec.model.inference import load_for_inference

    torch.set_num_threads(args.threads)
    weights = [float(w) for w in args.weights.split(",") if w.strip()]
    ds = PreparedDataset.load(args.data)
    model = load_for_inference(args.model)
    model.eval()
    if not float(getattr(model.config, "match_weight", 0.0) or 0.0) > 0:
        raise SystemExit(f"{args.model} was trained without a matching loss: its matching head is untrained")
    start = time.perf_counter()
    valid = subset_rows(ds.eval_rows("valid"), args.valid_users, 0)
    v_llm, v_match = two_scores(model, valid, ds.titles, args.item_embedding)
    test = subset_rows(ds.eval_rows("test"), args.test_users or None, 0)
    t_llm, t_match = two_scores(model, test, ds.titles, args.item_embedding)
    seconds = time.perf_counter() - start

    valid_hit = {w: float(fused_hits(v_llm, v_match, valid["target_index"], w).mean()) for w in weights}
    best = max(weights, key=lambda w: (valid_hit[w], -w))  # ties: the smaller weight (closer to the LLM alone)
    scen = np.asarray(test["scenario"])
    others = {}
    for spec in args.compare:
        name, _, path = spec.partition("=")
        r = json.loads(Path(path).read_text())
        by_user = dict(zip(map(int, r["per_user"]["user_id"]), r["per_user"]["hit@1"]))
        missing = [u for u in test["user_id"] if int(u) not in by_user]
        if missing:
            raise SystemExit(f"--compare {name}: {path} did not score {len(missing)} of these test users")
        others[name] = np.asarray([by_user[int(u)] for u in test["user_id"]], dtype=np.float64)
    rows = []
    for w in weights:
        hits = fused_hits(t_llm, t_match, test["target_index"], w)
        lo, hi = bootstrap_interval(hits)
        row = {"weight": w, "valid_hit1": valid_hit[w], "test_hit1": float(hits.mean()), "test_ci": [lo, hi],
               **{f"test_hit1_{s}": (float(hits[scen == s].mean()) if (scen == s).any() else None) for s in ("warm", "mid", "cold")}}
        for name, v in others.items():
            row[f"vs_{name}"] = paired_difference(hits, v)
            row[f"vs_{name}_cold"] = paired_difference(hits[scen == "cold"], v[scen == "cold"])
        rows.append(row)

    label = {0.0: "LLM alone", 1e6: "matching head alone"}
    head = ["W", "valid Hit@1", "test Hit@1 [95% CI]", "warm", "mid", "cold"] + [f"Δ vs {n} (all / cold)" for n in others]
    lines = [f"match fusion on {ds.name}: {args.model}, {len(valid['user_id'])} validation / {len(test['user_id'])} test "
             f"users (seed 0), item embedding {args.item_embedding or model.config.item_embedding}; chosen on validation: "
             f"W = {best:g}; scoring {seconds:.0f} s", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        w = r["weight"]
        cells = [f"{w:g}" + (f" ({label[w]})" if w in label else "") + (" **chosen**" if w == best else ""),
                 f"{r['valid_hit1']:.3f}", f"{r['test_hit1']:.3f} [{r['test_ci'][0]:.3f}, {r['test_ci'][1]:.3f}]"]
        cells += ["–" if r[f"test_hit1_{s}"] is None else f"{r[f'test_hit1_{s}']:.3f}" for s in ("warm", "mid", "cold")]
        for n in others:
            a, c = r[f"vs_{n}"], r[f"vs_{n}_cold"]
            cells.append(f"{a['difference']:+.3f} [{a['low']:+.3f}, {a['high']:+.3f}] / "
                         f"{c['difference']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]")
        lines.append("| " + " | ".join(cells) + " |")
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "data": args.data, "chosen_weight": best,
                                               "rows": rows, "seconds": seconds}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
