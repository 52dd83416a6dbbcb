"""``allmrec reproduce --data D [--budget demo|cpu|paper] [--tables 1,4,...] --out R [--dry-run]``."""

from __future__ import annotations

import argparse
import shlex
import sys

from ..errors import AllmrecError

DESCRIPTION = """\
Plan and run the paper's experiments on one prepared dataset, then write R/report.md, R/report.html and
R/figures/*.png: Table 1 (SASRec, SASRec with full cross-entropy, NCF, NextItNet, GRU4Rec, LLM-Only, TALLRec,
MLP-LLM, A-LLMRec with the paper's and the default recipe, A-LLMRec (SBERT), A-LLMRec_all, A-LLMRec + LoRA),
Table 4 cold/warm items, 5 cold users, 6 few-shot K, 7 cross-domain (--cross-domain D2), 8 stage-1 ablations,
9 stage-2 ablations, 10 train/inference time, 11 CF backbones, and Figure 4 favourite-genre prediction.

Every cell is one `allmrec` command; finished cells are kept, so running the same command again resumes (a killed
run never leaves a half-written cell that is read as done). --dry-run prints every command with its estimated
cost. Budgets: demo (a smoke run of every table, under an hour on 2 CPU cores; the numbers are noise), cpu (a few
hours on 2 cores; 200 seeded test users per cell), paper (the paper's epochs, every user).

Example (offline):
  allmrec reproduce --data runs/data/ml-100k --budget cpu --out reports/ml100k --dry-run
"""


def _budget_fields_help() -> str:
    """The --set fields, one help line each, with every budget's value (read from the dataclass, never retyped)."""
    from dataclasses import fields

    from .budgets import BUDGETS, ReproduceBudget

    lines = ["budget fields (--set FIELD=VALUE; values of " + " / ".join(BUDGETS) + "):"]
    for f in fields(ReproduceBudget):
        if f.name != "name":
            values = " / ".join(str(getattr(b, f.name)) for b in BUDGETS.values())
            lines.append(f"  {f.name:<20} {f.metadata['help']} [{values}]")
    return "\n".join(lines)


def register(sub) -> None:
    from .budgets import BUDGETS
    from .plan import TABLES

    p = sub.add_parser("reproduce", help="run the paper's tables on one dataset (resumable) → report.md / report.html",
                       description=DESCRIPTION, epilog=_budget_fields_help(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="prepared dataset directory (allmrec data prepare)")
    p.add_argument("--out", required=True, help="report folder R: checkpoints in R/work, results in R/results")
    p.add_argument("--budget", choices=list(BUDGETS), default="cpu", help="how much each cell trains and scores (default: cpu)")
    p.add_argument("--tables", default=",".join(TABLES),
                   help=f"comma-separated tables to plan (default: all: {','.join(TABLES)})")
    p.add_argument("--set", dest="overrides", default=None, metavar="FIELD=VALUE,...",
                   help="change budget fields, e.g. stage2_steps=80,eval_users=943 (see allmrec.reproduce.budgets)")
    p.add_argument("--llm", default="smollm2-135m-instruct", help="LLM of every LLM-based model (asset, Hub id or folder)")
    p.add_argument("--sbert", default="all-minilm-l6-v2", help="SBERT of stage 1 (asset, Hub id or folder)")
    p.add_argument("--seed", type=int, default=0, help="seed of every training (default: 0)")
    p.add_argument("--cross-domain", default=None, metavar="D2",
                   help="a second prepared dataset: Table 7 evaluates the models trained on --data there")
    p.add_argument("--time-limit", default=None, metavar="DURATION",
                   help="run only the steps whose estimate fits in DURATION (90m, 2h30m; a bare number is minutes), "
                        "a training together with the cells that read it, and defer the rest to the next run of "
                        "the same command: packs a job window that ends, instead of dying mid-training (a training whose "
                        "cells never fit one window runs with those that fit; the next window retrains it)")
    p.add_argument("--dry-run", action="store_true", help="print the plan (every command, estimated cost) and exit")
    p.add_argument("--report-only", action="store_true", help="write the report from the finished cells; run nothing")
    p.set_defaults(func=run_reproduce)


def _making_argv(argv: list[str]) -> list[str]:
    """The command line that makes the results: without --report-only / --time-limit (they change what runs
    when, not what is computed), so the report names the command a reader reruns."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--report-only" or a.startswith("--time-limit="):
            continue
        elif a == "--time-limit":
            skip = True
        else:
            out.append(a)
    return out


def run_reproduce(args) -> int:
    from pathlib import Path

    from .budgets import get_budget
    from .plan import build_plan
    from .report import write_report
    from .runner import format_plan, parse_time_limit, run_plan

    tables = tuple(t.strip() for t in args.tables.split(",") if t.strip())
    if not tables:
        raise AllmrecError("--tables names no table")
    budget = get_budget(args.budget, args.overrides)
    plan = build_plan(args.data, budget, tables, llm=args.llm, sbert=args.sbert, seed=args.seed,
                      cross_domain=args.cross_domain)
    root = Path(args.out)
    if args.dry_run:
        print(format_plan(plan, root))
        return 0
    command = "allmrec " + " ".join(shlex.quote(a) for a in (_making_argv(sys.argv[1:]) if sys.argv[1:2] == ["reproduce"]
                                                              else ["reproduce", "--data", args.data, "--out", args.out,
                                                                    "--budget", args.budget]))
    time_limit_s = parse_time_limit(args.time_limit) if args.time_limit else None
    if not args.report_only:
        run_plan(plan, root, time_limit_s=time_limit_s)
    else:
        from .runner import check_identity

        check_identity(plan, root)
    md, page = write_report(plan, root, command=command)
    print(f"report: {md} and {page}")
    return 0


__all__ = ["register", "run_reproduce"]
