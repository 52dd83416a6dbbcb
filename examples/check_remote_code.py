"""Check that an A-LLMRec checkpoint loads with only torch + transformers (Hub remote code) and reproduces
the scores that ``allmrec`` itself computes.

Two steps, two interpreters (``examples/check_remote_code.sh`` runs both):

``--mode reference`` (an environment **with** allmrec)
    loads the checkpoint with ``ALLMRecForRecommendation.from_pretrained``, scores a few probe users (real test
    users of ``--data`` when given, else seeded random histories/candidates over the catalogue) and writes
    ``--expected`` = {probes, scores, llm folder}.
``--mode remote`` (an environment **without** allmrec)
    asserts ``import allmrec`` fails, loads the same checkpoint (local folder or Hub repo at ``--revision``) with
    ``AutoModel.from_pretrained(..., trust_remote_code=True)`` and checks that every probe's candidate scores are
    bit-identical to the reference. Exit status 0 = reproduced, 1 = differs.

The base LLM is passed as a local folder (``llm_name_or_path=``): allmrec asset names such as
``smollm2-135m-instruct`` mean nothing without allmrec, so the reference step records the resolved folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def reference(args) -> int:
    import numpy as np

    from allmrec.assets import resolve_llm
    from allmrec.model import ALLMRecForRecommendation

    start = time.perf_counter()
    hub = {"revision": args.revision} if args.revision else {}
    model = ALLMRecForRecommendation.from_pretrained(args.checkpoint, **hub, **({"llm_name_or_path": args.llm} if args.llm else {}))
    llm_dir = resolve_llm(args.llm or model.config.llm_name_or_path)
    if args.data:
        from allmrec.data.dataset import PreparedDataset

        rows = PreparedDataset.load(args.data).eval_rows("test")
        pick = np.random.default_rng(args.seed).choice(len(rows["user_id"]), size=min(args.users, len(rows["user_id"])), replace=False)
        probes = [{"user_id": int(rows["user_id"][i]), "history": [int(x) for x in rows["history"][i]],
                   "candidates": [int(x) for x in rows["candidates"][i]]} for i in sorted(pick)]
    else:
        rng = np.random.default_rng(args.seed)
        n = model.config.num_items
        probes = [{"history": rng.choice(np.arange(1, n + 1), size=int(rng.integers(1, 12)), replace=False).tolist(),
                   "candidates": rng.choice(np.arange(1, n + 1), size=min(20, n), replace=False).tolist()} for _ in range(args.users)]
    for p in probes:
        p["ranking"] = model.recommend(p["history"], p["candidates"])
    out = {"checkpoint": str(args.checkpoint), "revision": args.revision, "llm": llm_dir, "probes": probes,
           "seconds": round(time.perf_counter() - start, 2)}
    Path(args.expected).write_text(json.dumps(out, indent=1), encoding="utf-8")
    print(f"reference: {len(probes)} probe users scored with allmrec in {out['seconds']} s -> {args.expected}")
    return 0


def remote(args) -> int:
    try:
        import allmrec  # noqa: F401
    except ImportError:
        pass
    else:
        print(f"error: allmrec is importable here ({allmrec.__file__}); run this step in an environment without it",
              file=sys.stderr)
        return 2
    from transformers import AutoModel

    expected = json.loads(Path(args.expected).read_text(encoding="utf-8"))
    start = time.perf_counter()
    hub = {"revision": args.revision} if args.revision else {}
    model = AutoModel.from_pretrained(args.checkpoint, trust_remote_code=True, llm_name_or_path=args.llm or expected["llm"], **hub)
    module = type(model).__module__
    if not module.startswith("transformers_modules."):
        print(f"error: AutoModel did not use the checkpoint's code (class from {module})", file=sys.stderr)
        return 1
    worst, mismatched = 0.0, 0
    for p in expected["probes"]:
        got = model.recommend(p["history"], p["candidates"])
        want = {r["item_id"]: r["score"] for r in p["ranking"]}
        diffs = [abs(r["score"] - want[r["item_id"]]) for r in got]
        worst = max(worst, max(diffs))
        mismatched += [r["item_id"] for r in got] != [r["item_id"] for r in p["ranking"]] or max(diffs) > 0
    seconds = round(time.perf_counter() - start, 2)
    ok = mismatched == 0
    print(json.dumps({"reproduced": ok, "probe_users": len(expected["probes"]), "mismatched_users": mismatched,
                      "max_abs_score_diff": worst, "model_class": f"{module}.{type(model).__name__}",
                      "cf_class": f"{type(model.cf_model).__module__}.{type(model.cf_model).__name__}", "seconds": seconds}))
    return 0 if ok else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("reference", "remote"), required=True)
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder or Hub repo id")
    parser.add_argument("--revision", default=None, help="Hub revision (commit sha) to pin")
    parser.add_argument("--expected", required=True, help="reference scores JSON (written by reference, read by remote)")
    parser.add_argument("--llm", default=None, help="base LLM folder (default: the checkpoint's, resolved by allmrec)")
    parser.add_argument("--data", default=None, help="prepared dataset: probe real test users (reference mode)")
    parser.add_argument("--users", type=int, default=8, help="probe users")
    parser.add_argument("--seed", type=int, default=0, help="seed of the probe choice")
    args = parser.parse_args(argv)
    return reference(args) if args.mode == "reference" else remote(args)


if __name__ == "__main__":
    sys.exit(main())
