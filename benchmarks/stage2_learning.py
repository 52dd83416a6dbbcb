"""Does stage 2 learn? Validation Hit@1 against training step for each stage-2 training variant, same budget,
same validation users, same seed → a Markdown table and a learning-curve PNG.

Each variant is one ``allmrec train stage2`` run (a subprocess, so runs never share threads) of ``--steps``
steps that validates every ``--eval-every`` steps on the same seeded ``--valid-users`` validation users
(rank mode, stored candidates; chance = 1/20). Variants are the default recipe (``index-lora``,
:mod:`allmrec.model.recipes`) with one field changed, so each row says what that field is worth; ``paper`` is
``--recipe paper`` (the paper's token loss, layout and lr). Variants that read another stage-1 output (``infonce``:
stage 1 trained with ``--match-loss infonce``) take it from ``--stage1-for NAME=DIR``. With ``--test-users N`` each
finished run is also scored on N seeded test users (``allmrec evaluate --mode rank``), overall and on cold targets:

    python benchmarks/stage2_learning.py --data D --stage1 S1 --out runs/learning \\
        --variants default,paper,paper-lr1e-3,token,listwise,sum,paper-layout,no-zscore,no-norm,last-targets
    python benchmarks/stage2_learning.py --data D --stage1 S1 --out runs/levers --steps 480 --eval-every 80 \\
        --valid-users 200 --test-users 1000 --variants default,fp32,auto,text-mix,infonce,infonce-text-mix \\
        --stage1-for infonce=S1_INFONCE --stage1-for infonce-text-mix=S1_INFONCE
    python benchmarks/stage2_learning.py ... --include default=runs/s2   # reuse a finished run's log

MLP-LLM (raw CF item embeddings instead of the stage-1 table) is ``--stage1`` = the identity alignment that
``allmrec train mlpllm`` writes next to its output (``.<out>.mlpllm-identity``).

Writes ``OUT/learning.md`` (final / best Hit@1, step of the best, seconds per step, final loss) and
``OUT/learning_curves.png``; runs that already finished (``OUT/<variant>/training_log.json``) are not re-run.
A 2-core CPU runs one variant at a time: a SmolLM2-135M listwise step of 4 users took ~20 s there (fp32, AVX2);
an index-lora step 6.2 s on a 2-core AMD EPYC with AVX512-BF16 (bf16 autocast, the default there).
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
    "index-lora": ["--recipe", "index-lora"],  # one-label answers + LoRA r8 (lora-lr 6e-4)
    "listwise-frozen": ["--recipe", "listwise"],  # title answers, frozen LLM
    "fp32": ["--mixed-precision", "no"],  # the quality check of bf16 autocast: the same run in fp32
    "auto": ["--item-embedding", "auto"],  # q_i for items never trained on (F_I trained on e_i only)
    "text-mix": ["--text-item-prob", "0.5", "--item-embedding", "auto"],  # F_I trained on e_i and q_i
    "infonce": [],  # stage 1 with --match-loss infonce (--stage1-for infonce=DIR)
    "infonce-auto": ["--item-embedding", "auto"],
    "infonce-text-mix": ["--text-item-prob", "0.5", "--item-embedding", "auto"],
}
#: variants that need their own stage-1 output (``--stage1-for NAME=DIR``)
OWN_STAGE1 = ("infonce", "infonce-auto", "infonce-text-mix")


def run_variant(name: str, flags: list[str], args, out: Path, stage1: str) -> Path:
    run = out / name
    if (run / "training_log.json").is_file():
        print(f"[{name}] done before: {run}", flush=True)
        return run
    cmd = [sys.executable, "-m", "allmrec", "train", "stage2", "--data", args.data, "--stage1", stage1,
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
    from allmrec.model.recipes import DEFAULT_RECIPE, RECIPES

    # what the default recipe sets: not worth a flag
    defaults = {"recipe": DEFAULT_RECIPE, **{k: RECIPES[DEFAULT_RECIPE].get(k) for k in ("answer_format", "llm_lora_rank", "lora_lr")}}
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
    flags = " ".join(VARIANTS[name]) if name in VARIANTS else included_flags(log["args"])
    if name in OWN_STAGE1:
        flags = f"--stage1 {log['args'].get('stage1')} {flags}".strip()
    return {"variant": name, "flags": flags or "(default recipe)",
            "curve": curve, "final": curve[-1][1] if curve else float("nan"), "best": best[1], "best_step": best[0],
            "steps": log["steps"], "seconds_per_step": log.get("seconds_per_step"),
            "final_loss": sum(tail) / len(tail) if tail else float("nan"),
            "valid_users": log["validations"][-1]["n_users"] if log["validations"] else 0,
            "recipe": {k: log["args"].get(k) for k in ("recipe", "objective", "listwise_normalization", "targets",
                                                       "prompt_layout", "input_standardization", "soft_token_norm",
                                                       "lr", "lr_schedule", "warmup_steps")}}


def score_variant(name: str, run: Path, args, out: Path) -> dict:
    """Test Hit@1 of a finished run on ``--test-users`` seeded users (overall, warm, cold), cached in OUT/NAME.test.json."""
    result = out / f"{name}.test.json"
    if not result.is_file():
        cmd = [sys.executable, "-m", "allmrec", "evaluate", "--model", str(run), "--data", args.data, "--mode", "rank",
               "--max-users", str(args.test_users), "--subset-seed", "0", "--out", str(result)]
        print(f"[{name}] $ {' '.join(cmd[1:])}", flush=True)
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        with open(out / f"{name}.test.log", "w") as log:
            subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, env=env)
    r = json.loads(result.read_text())
    scen = r.get("scenarios", {})
    return {"test_users": r["n_users"], "test_hit1": r["metrics"]["hit@1"],
            "test_hit1_warm": scen.get("warm", {}).get("metrics", {}).get("hit@1"),
            "test_hit1_cold": scen.get("cold", {}).get("metrics", {}).get("hit@1")}


def _num(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def write_report(rows: list[dict], out: Path) -> None:
    lines = ["| variant | flags | steps | valid users | Hit@1 final | Hit@1 best (step) | final loss | s/step "
             "| test Hit@1 (users) | warm | cold |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | `{r['flags']}` | {r['steps']} | {r['valid_users']} | {r['final']:.3f} | "
                     f"{r['best']:.3f} ({r['best_step']}) | {r['final_loss']:.3f} | {r['seconds_per_step']} | "
                     f"{_num(r.get('test_hit1'))} ({r.get('test_users', '–')}) | {_num(r.get('test_hit1_warm'))} | "
                     f"{_num(r.get('test_hit1_cold'))} |")
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
    p.add_argument("--stage1-for", action="append", default=[], metavar="NAME=DIR",
                   help=f"the stage-1 output of variant NAME (needed by {', '.join(OWN_STAGE1)}; default: --stage1)")
    p.add_argument("--test-users", type=int, default=0,
                   help="also score every finished run on this many seeded test users, overall / warm / cold (0 = no)")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in args.include:
        name, _, path = spec.partition("=")
        rows.append(summarise(name, Path(path)))
    own = dict(spec.partition("=")[::2] for spec in args.stage1_for)
    for name in [v.strip() for v in args.variants.split(",") if v.strip()]:
        if name not in VARIANTS:
            p.error(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
        if name in OWN_STAGE1 and name not in own:
            p.error(f"variant {name} reads its own stage-1 output: pass --stage1-for {name}=DIR")
        if any(r["variant"] == name for r in rows):
            continue
        run = run_variant(name, VARIANTS[name], args, out, own.get(name, args.stage1))
        row = summarise(name, run)
        if args.test_users:
            row.update(score_variant(name, run, args, out))
        rows.append(row)
    write_report(rows, out)


if __name__ == "__main__":
    main()
