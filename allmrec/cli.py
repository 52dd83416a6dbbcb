"""The ``allmrec`` command line.

One sub-command per pipeline step; each step's module registers its own parser (``register``)
and keeps heavy imports (torch, transformers) inside its handler, so ``allmrec --help`` is fast.

    allmrec data prepare | data stats
    allmrec train cf | stage1 | stage2 | tallrec
    allmrec evaluate
    allmrec recommend
    allmrec push
    allmrec demo

Errors caused by input (``AllmrecError``) print one line and exit 2; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from .errors import AllmrecError


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .alignment import cli as alignment_cli
    from .baselines import cli as baselines_cli
    from .cf import cli as cf_cli
    from .data import cli as data_cli
    from .evaluation import cli as evaluation_cli
    from .evaluation import genres as genres_cli
    from .reproduce import cli as reproduce_cli
    from .model import cli as model_cli
    from . import demo as demo_cli
    from hub import cli as hub_cli

    parser = argparse.ArgumentParser(
        prog="allmrec",
        description="A-LLMRec on the Hugging Face stack: prepare data, train the CF backbone, align it with "
        "text (stage 1), project it into a frozen LLM (stage 2), evaluate, recommend and publish.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"allmrec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data_cli.register(sub)
    train = sub.add_parser(
        "train",
        help="train one model: cf (SASRec/GRU4Rec/NextItNet/NCF), stage1, stage2, tallrec",
        description="Train one model of the pipeline. Each runs unchanged under `accelerate launch -m allmrec ...`.",
    )
    train_sub = train.add_subparsers(dest="what", required=True, metavar="WHAT")
    cf_cli.register_train(train_sub)
    alignment_cli.register_train(train_sub)
    model_cli.register_train(train_sub)
    baselines_cli.register_train(train_sub)
    evaluation_cli.register(sub)
    genres_cli.register(sub)
    reproduce_cli.register(sub)
    model_cli.register_recommend(sub)
    hub_cli.register(sub)
    demo_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Offline by default: nothing can be fetched from the Hub here, and an online lookup that
    # cannot connect retries for ~70 s before failing. Users with network can set HF_HUB_OFFLINE=0;
    # commands that must talk to the Hub (push) declare needs_hub. Set after parsing, before any
    # command imports huggingface_hub (which reads the variable at import time).
    needs_hub = getattr(args, "needs_hub", False)
    if callable(needs_hub):  # e.g. `data prepare --source hub:REPO`
        needs_hub = needs_hub(args)
    if not needs_hub:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        rc = args.func(args)
    except AllmrecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
