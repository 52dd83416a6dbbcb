"""``allmrec demo`` (``make demo``): the whole pipeline on MovieLens-100K, offline, on a CPU.

prepare → SASRec → stage 1 (MiniLM fine-tuned) → stage 2 (SmolLM2-135M-Instruct with LoRA) → evaluate
A-LLMRec, SASRec and the zero-shot LLM (the paper's LLM-Only: same prompt without soft tokens) on
identical stored candidates → one table, ``results/*.json`` and a Hit@1 bar chart like the
paper's Figure 1.

The default budget aims at 30 minutes on a 2-core machine; it is printed at the start. Stage 2 runs the default
recipe, ``index-lora`` (:mod:`allmrec.model.recipes`): 20 epochs of the matching loss alone (no LLM pass, seconds),
then 60 LLM steps (240 prompts) in which the projectors and rank-8 LoRA adapters on the LLM learn to answer with the
label of the chosen candidate: the recipe that learns fastest on a small LLM (docs/training.md).
60 steps because a step measured 6.0, 8.9 and 14.4 s on three 2-core machines of the same kind: at the slowest,
60 steps are 14 min and the whole demo stays under 30. ``--stage2-recipe listwise`` keeps the LLM frozen;
``paper`` is the paper's Eq. 8. The LLM-based models are scored on
the same 200 seeded test users (SASRec also on all users); every Hit@1 is printed with its 95 % bootstrap interval.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .model.recipes import DEFAULT_RECIPE


@dataclass
class DemoBudget:
    """How much work each stage of the demo does (defaults sized for 2 CPU cores, < 30 min)."""

    cf_epochs: int = field(default=60, metadata={"help": "SASRec epochs (paper: 200, early stopping on valid)"})
    stage1_epochs: int = field(default=3, metadata={"help": "stage-1 epochs over all users (paper: 10)"})
    stage1_sbert_layers: int = field(default=2, metadata={"help": "fine-tune only the top N SBERT layers (0: all, the paper)"})
    stage2_steps: int = field(default=60, metadata={"help": "stage-2 LLM steps of batch 4 after the recipe's matching pre-training (paper: 5 epochs)"})
    stage2_recipe: str = field(default=DEFAULT_RECIPE, metadata={"help": "stage-2 recipe (allmrec train stage2 --recipe): index-lora (one-label answers + LoRA r8 on the LLM: the default, the best measured), listwise (frozen LLM, ~2x slower steps) or paper (Eq. 8)"})
    stage2_valid_users: int = field(default=0, metadata={"help": "validation users for stage-2 early stopping (0: none)"})
    eval_users: int = field(default=200, metadata={"help": "seeded subset of test users scored by the LLM-based models (>= 200 keeps the interval near ±0.06)"})
    modes: str = field(default="rank", metadata={"help": "evaluation modes of the LLM-based models (rank, generate or rank,generate)"})


def register(sub) -> None:
    import argparse

    p = sub.add_parser(
        "demo",
        help="end-to-end run on MovieLens-100K + SmolLM2-135M-Instruct + all-MiniLM-L6-v2 (offline, < 30 min on CPU)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--workdir", default="runs/demo", help="where the demo writes its data and checkpoints")
    p.add_argument("--results", default="results", help="where the results JSON files and the chart go")
    p.add_argument("--llm", default="smollm2-135m-instruct", help="frozen LLM (asset name, Hub id or folder)")
    p.add_argument("--sbert", default="all-minilm-l6-v2", help="SBERT model for stage 1")
    p.add_argument("--seed", type=int, default=0, help="seed of every stage")
    for f in fields(DemoBudget):
        p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default, help=f.metadata["help"])
    p.set_defaults(func=run)


def _step(title: str):
    print(f"\n=== {title}", flush=True)
    return time.perf_counter()


def _call(argv: list[str]) -> None:
    from .cli import main
    from .errors import AllmrecError

    print("$ allmrec " + " ".join(argv), flush=True)
    rc = main(argv)
    if rc:
        raise AllmrecError(f"demo step failed (exit {rc}): allmrec {' '.join(argv)}")


def run(args) -> int:
    budget = DemoBudget(**{f.name: getattr(args, f.name) for f in fields(DemoBudget)})
    work, res = Path(args.workdir), Path(args.results)
    res.mkdir(parents=True, exist_ok=True)
    data, cf, s1, s2 = work / "data" / "ml-100k", work / "sasrec", work / "stage1", work / "allmrec"
    modes = [m.strip() for m in budget.modes.split(",") if m.strip()]
    seed = str(args.seed)
    print("allmrec demo: MovieLens-100K, SASRec → stage 1 → stage 2 on", args.llm, "(offline, CPU)")
    print("budget:", json.dumps(asdict(budget)))
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    t = _step("1/5 prepare MovieLens-100K")
    _call(["data", "prepare", "--source", "ml-100k", "--out", str(data), "--overwrite"])
    timings["prepare"] = time.perf_counter() - t

    t = _step("2/5 train SASRec (the frozen CF backbone)")
    _call(["train", "cf", "--data", str(data), "--model", "sasrec", "--out", str(cf), "--epochs", str(budget.cf_epochs),
           "--seed", seed, "--overwrite", "--no-progress"])
    timings["train_sasrec"] = time.perf_counter() - t

    t = _step("3/5 stage 1: align SASRec item embeddings with MiniLM text embeddings")
    _call(["train", "stage1", "--data", str(data), "--cf", str(cf), "--out", str(s1), "--sbert", args.sbert,
           "--epochs", str(budget.stage1_epochs), "--seed", seed, "--overwrite", "--no-progress",
           *(["--sbert-train-layers", str(budget.stage1_sbert_layers)] if budget.stage1_sbert_layers else [])])
    timings["train_stage1"] = time.perf_counter() - t

    t = _step(f"4/5 stage 2: project into {args.llm} ({budget.stage2_recipe} recipe, {budget.stage2_steps} steps of 4 prompts)")
    _call(["train", "stage2", "--data", str(data), "--stage1", str(s1), "--llm", args.llm, "--out", str(s2),
           "--max-steps", str(budget.stage2_steps), "--valid-users", str(budget.stage2_valid_users), "--seed", seed,
           "--recipe", budget.stage2_recipe,
           "--overwrite", "--no-progress"])
    timings["train_stage2"] = time.perf_counter() - t

    t = _step(f"5/5 evaluate on identical stored candidates (LLM-based models: {budget.eval_users} seeded test users)")
    sub = ["--max-users", str(budget.eval_users)]
    runs = [("SASRec (all users)", ["--model", str(cf)], "sasrec_all.json")]
    runs.append(("SASRec", ["--model", str(cf), *sub], "sasrec.json"))
    for mode in modes:
        # the demo ends each generated answer at its closing quote: exact-match Hit@1 is unchanged and a
        # zero-shot 135M model that never closes its quote would otherwise decode 64 tokens per user
        gen = ["--stop-at-answer"] if mode == "generate" else []
        runs.append((f"LLM-Only ({mode})", ["--model", f"llm:{args.llm}", "--mode", mode, *gen, *sub], f"llm_only_{mode}.json"))
        runs.append((f"A-LLMRec ({mode})", ["--model", str(s2), "--mode", mode, *gen, *sub], f"allmrec_{mode}.json"))
    results = []
    for label, extra, name in runs:
        _call(["evaluate", "--data", str(data), "--split", "test", "--out", str(res / name), *extra])
        results.append((label, json.loads((res / name).read_text())))
    timings["evaluate"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_all

    table = format_table(results)
    print("\n" + table)
    print("\nstage timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    (res / "demo_summary.json").write_text(
        json.dumps({"budget": asdict(budget), "llm": args.llm, "timings_s": timings, "table": table}, indent=2) + "\n"
    )
    chart = plot_hit1(results, res / "hit1.png")
    print(f"results: {res}/*.json" + (f", chart: {chart}" if chart else ""))
    return 0


def format_table(results: list[tuple[str, dict]]) -> str:
    cols = ["users", "hit@1", "95% interval", "hit@5", "ndcg@10", "warm", "cold", "valid"]
    lines = [f"{'model':<22}{cols[0]:>9}{cols[1]:>9}{cols[2]:>17}" + "".join(f"{c:>9}" for c in cols[3:])]
    for label, r in results:
        m, sc = r["metrics"], r.get("scenarios", {})

        def f(x):
            return f"{x:9.4f}" if isinstance(x, (int, float)) else f"{'-':>9}"

        lo, hi = (r.get("intervals") or {}).get("hit@1", (None, None))
        interval = f"[{lo:.3f}, {hi:.3f}]" if lo is not None else "-"
        lines.append(
            f"{label:<22}{r['n_users']:>9}" + f(m.get("hit@1")) + f"{interval:>17}" + f(m.get("hit@5")) + f(m.get("ndcg@10"))
            + f(sc.get("warm", {}).get("metrics", {}).get("hit@1")) + f(sc.get("cold", {}).get("metrics", {}).get("hit@1"))
            + f(m.get("valid_rate"))
        )
    lines.append("interval: 95% bootstrap over the evaluated users (1,000 seeded resamples); chance hit@1 = 0.05.")
    lines.append("hit@1 in generate mode = exact title match among the 20 candidates; valid = outputs naming a candidate.")
    return "\n".join(lines)


def plot_hit1(results: list[tuple[str, dict]], path: Path) -> Path | None:
    """Grouped bars of Hit@1 overall / warm / cold per model (the paper's Figure 1 layout)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # matplotlib is in the demo/test extras; the table is still printed
        return None
    groups = ["overall", "warm", "cold"]
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(len(results), 1)
    for k, (label, r) in enumerate(results):
        vals = [r["metrics"]["hit@1"]] + [r.get("scenarios", {}).get(g, {}).get("metrics", {}).get("hit@1", 0.0) for g in groups[1:]]
        lo, hi = (r.get("intervals") or {}).get("hit@1", (vals[0], vals[0]))
        xs = [g + k * width for g in range(len(groups))]
        ax.bar(xs, vals, width, label=f"{label} (n={r['n_users']})")
        # only the overall bar carries its bootstrap interval (the results hold none per scenario)
        ax.errorbar(xs[0], vals[0], yerr=[[vals[0] - lo], [hi - vals[0]]], fmt="none", ecolor="black", capsize=3)
    ax.set_xticks([g + width * (len(results) - 1) / 2 for g in range(len(groups))], groups)
    ax.set_ylabel("Hit@1 (20 candidates)")
    ax.set_title("MovieLens-100K test: Hit@1 overall / warm / cold items")
    ax.axhline(0.05, color="grey", lw=0.8, ls="--")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
