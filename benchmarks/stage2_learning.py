"""Does stage 2 learn? Validation Hit@1 against training step for each stage-2 training variant, same budget,
same validation users, same seed → a Markdown table and a learning-curve PNG.

Each variant is one ``allmrec train stage2`` run (a subprocess, so runs never share threads) of ``--steps``
steps that validates every ``--eval-every`` steps on the same seeded ``--valid-users`` validation users
(rank mode, stored candidates; chance = 1/20). Variants are the default recipe with one field changed, so each row
says what that field is worth; ``paper`` is ``--recipe paper`` (the paper's token loss, layout and lr):

    python benchmarks/stage2_learning.py --data D --stage1 S1 --out runs/learning \\
        --variants default,paper,paper-lr1e-3,token,listwise,sum,paper-layout,no-zscore,no-norm,last-targets
    python benchmarks/stage2_learning.py ... --include default=runs/s2_listwise   # reuse a finished run's log

MLP-LLM (raw CF item embeddings instead of the stage-1 table) is ``--stage1`` = the identity alignment that
``allmrec train mlpllm`` writes next to its output (``.<out>.mlpllm-identity``).

Writes ``OUT/learning.md`` (final / best Hit@1, step of the best, seconds per step, final loss) and
``OUT/learning_curves.png``; runs that already finished (``OUT/<variant>/training_log.json``) are not re-run.
A 2-core CPU runs one variant at a time: a SmolLM2-135M listwise step of 4 users took ~20 s there (fp32, AVX2).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

#: variant name → the ``allmrec train stage2`` flags that differ from the default recipe
VARIANTS: dict[str, list[str]] = {
    "default": [],
    "paper": ["--recipe", "paper"],
    "paper-lr1e-3": ["--recipe", "paper", "--lr", "1e-3"],
    "token": ["--objective", "token"],
    "listwise": ["--objective", "listwise"],
    "sum": ["--listwise-normalization", "sum"],
    "paper-layout": ["--prompt-layout", "paper"],
    "no-zscore": ["--input-standardization", "none"],
    "no-norm": ["--soft-token-norm", "none"],
    "last-targets": ["--targets", "last"],
    "constant-lr": ["--lr-schedule", "constant", "--warmup-steps", "0"],
    "no-matching": ["--match-weight", "0", "--match-pretrain-epochs", "0"],
    "teacher": ["--user-token-teacher", "0.5"],
    "lora": ["--llm-lora-rank", "8", "--lora-lr", "3e-4"],
    "index": ["--answer-format", "index"],
    "index-lora": ["--recipe", "index-lora"],  # the best measured: one-label answers + LoRA r8 (lora-lr 6e-4)
}


def run_variant(name: str, flags: list[str], args, out: Path) -> Path:
    run = out / name
    if (run / "training_log.json").is_file():
        print(f"[{name}] done before: {run}", flush=True)
        return run
    cmd = [sys.executable, "-m", "allmrec", "train", "stage2", "--data", args.data, "--stage1", args.stage1,
           "--llm", args.llm, "--out", str(run), "--max-steps", str(args.steps), "--eval-every", str(args.eval_every),
           "--valid-users", str(args.valid_users), "--patience", "1000000", "--seed", str(args.seed),
           "--llm-dtype", args.llm_dtype, "--overwrite", "--no-progress", *flags]
    print(f"[{name}] $ {' '.join(cmd[1:])}", flush=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    with open(out / f"{name}.log", "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, env=env)
    return run


def included_flags(run_args: dict) -> str:
    """The options that set an included run apart (its own training log's arguments), e.g. ``--recipe index-lora``."""
    defaults = {"recipe": "listwise", "answer_format": "title"}  # what the default recipe sets: not worth a flag
    keys = ("recipe", "answer_format", "llm_lora_rank", "lora_lr", "user_token_teacher")
    shown = [f"--{k.replace('_', '-')} {run_args[k]}" for k in keys
             if run_args.get(k) not in (None, 0, 0.0, defaults.get(k))]
    return "(included run) " + " ".join(shown)


def summarise(name: str, run: Path) -> dict:
    log = json.loads((run / "training_log.json").read_text())
    curve = [(v["step"], v["hit@1"]) for v in log["validations"]]
    best = max(curve, key=lambda c: c[1]) if curve else (None, float("nan"))
    losses = [x["loss"] for x in log["losses"]]
    tail = losses[-10:]
    return {"variant": name, "flags": (" ".join(VARIANTS[name]) if name in VARIANTS else included_flags(log["args"])) or "(default recipe)",
            "curve": curve, "final": curve[-1][1] if curve else float("nan"), "best": best[1], "best_step": best[0],
            "steps": log["steps"], "seconds_per_step": log.get("seconds_per_step"),
            "final_loss": sum(tail) / len(tail) if tail else float("nan"),
            "valid_users": log["validations"][-1]["n_users"] if log["validations"] else 0,
            "recipe": {k: log["args"].get(k) for k in ("recipe", "objective", "listwise_normalization", "targets",
                                                       "prompt_layout", "input_standardization", "soft_token_norm",
                                                       "lr", "lr_schedule", "warmup_steps")}}


def write_report(rows: list[dict], out: Path) -> None:
    lines = ["| variant | flags | steps | valid users | Hit@1 final | Hit@1 best (step) | final loss | s/step |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | `{r['flags']}` | {r['steps']} | {r['valid_users']} | {r['final']:.3f} | "
                     f"{r['best']:.3f} ({r['best_step']}) | {r['final_loss']:.3f} | {r['seconds_per_step']} |")
    lines.append("")
    lines.append("Curves (step: Hit@1): " + "; ".join(
        f"{r['variant']}: " + ", ".join(f"{s}: {h:.3f}" for s, h in r["curve"]) for r in rows))
    text = "\n".join(lines) + "\n"
    (out / "learning.md").write_text(text)
    (out / "learning.json").write_text(json.dumps(rows, indent=2))
    print(text)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no PNG")
        return
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for r in rows:
        if r["curve"]:
            ax.plot(*zip(*r["curve"]), marker="o", label=r["variant"])
    ax.axhline(0.05, color="grey", linestyle=":", label="chance (1/20)")
    ax.set_xlabel("training step (batch of 4 users)")
    ax.set_ylabel(f"validation Hit@1 ({rows[0]['valid_users'] if rows else '?'} users)")
    ax.set_title("Stage 2: does it learn the choice?")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "learning_curves.png", dpi=120)
    print(f"wrote {out / 'learning.md'} and {out / 'learning_curves.png'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="prepared dataset (allmrec data prepare)")
    p.add_argument("--stage1", required=True, help="stage-1 output (A-LLMRec) or an MLP-LLM identity alignment")
    p.add_argument("--llm", default="smollm2-135m-instruct", help="frozen LLM")
    p.add_argument("--out", required=True, help="folder for the runs, the table and the PNG")
    p.add_argument("--variants", default="default,paper", help=f"comma list of: {', '.join(VARIANTS)}")
    p.add_argument("--include", action="append", default=[], help="NAME=RUN_DIR: add a finished run's curve")
    p.add_argument("--steps", type=int, default=160, help="optimisation steps per variant")
    p.add_argument("--eval-every", type=int, default=40, help="validate every N steps")
    p.add_argument("--valid-users", type=int, default=40, help="seeded validation users (the same for every variant)")
    p.add_argument("--seed", type=int, default=0, help="seed of every run")
    p.add_argument("--threads", type=int, default=2, help="OMP threads of each run")
    p.add_argument("--llm-dtype", default="auto", help="auto (fp32 on CPU), float32, bfloat16 (CPUs with AMX)")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in args.include:
        name, _, path = spec.partition("=")
        rows.append(summarise(name, Path(path)))
    for name in [v.strip() for v in args.variants.split(",") if v.strip()]:
        if name not in VARIANTS:
            p.error(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
        if any(r["variant"] == name for r in rows):
            continue
        rows.append(summarise(name, run_variant(name, VARIANTS[name], args, out)))
    write_report(rows, out)


if __name__ == "__main__":
    main()
