"""``allmrec train cf``: train SASRec / GRU4Rec / NextItNet / NCF on a prepared dataset.

The flags are generated from :class:`allmrec.cf.training.CFTrainingArguments`, whose fields
carry the help texts, so the CLI and the Python API cannot drift apart. torch is imported only
inside the handler.
"""

from __future__ import annotations

from ..training.checkpointing import cli_fields

import argparse
import dataclasses

_CHOICES = {
    "model": ["sasrec", "gru4rec", "nextitnet", "ncf"],
    "loss": ["bce", "ce"],
    "select_metric": ["hit@1", "hit@5", "hit@10", "ndcg@10", "mrr"],
}
_REQUIRED = ("data", "out")

_EPILOG = """\
examples:
  allmrec train cf --data runs/ml100k --model sasrec --out runs/sasrec-bce
  allmrec train cf --data runs/ml100k --model sasrec --loss ce --out runs/sasrec-ce
  accelerate launch -m allmrec train cf --data D --model sasrec --out M    # several GPUs

The best epoch on the stored validation candidates (by --select-metric) is kept; training stops
after --patience validations without improvement. --epochs 200 is the SASRec paper's fixed budget
and is an upper bound here. On ml-100k, BCE SASRec peaks at epoch 188 (a 1000-epoch run with
patience 30 stops at 218 with the same best epoch); CE SASRec peaks at 131 and stops at 151;
GRU4Rec, NextItNet and NCF stop well before 200. M receives config.json, model.safetensors and
training_log.json (per-epoch loss, validation metrics, seconds)."""


def register_train(sub) -> None:
    from .training import CFTrainingArguments

    p = sub.add_parser(
        "cf",
        help="train a CF backbone (SASRec, GRU4Rec, NextItNet, NCF)",
        description="Train a collaborative-filtering backbone on a prepared dataset with accelerate "
        "(CPU, one GPU, or N GPUs via `accelerate launch`), validating on the stored candidates.",
        epilog=_EPILOG,
        formatter_class=_Formatter,
    )
    for f in cli_fields(CFTrainingArguments):
        flag = "--" + f.name.replace("_", "-")
        help_ = f.metadata.get("help", "")
        if f.name == "progress":
            p.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")
            continue
        if f.type in (bool, "bool"):
            p.add_argument(flag, action="store_true", help=help_)
            continue
        kind = {"int": int, "float": float, "str": str}
        type_name = str(f.type).split("|")[0].strip()
        if f.default is not None and f.name not in _REQUIRED:
            help_ += f" (default: {f.default})"
        kwargs = {"type": kind.get(type_name, str), "help": help_, "dest": f.name}
        if f.name in _CHOICES:
            kwargs["choices"] = _CHOICES[f.name]
        if f.name in _REQUIRED:
            kwargs["required"] = True
        else:
            kwargs["default"] = f.default
        p.add_argument(flag, **kwargs)
    p.set_defaults(func=run_train_cf)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's line breaks; defaults are written into each help text."""


def run_train_cf(args) -> int:
    from .training import CFTrainingArguments, train_cf

    names = {f.name for f in dataclasses.fields(CFTrainingArguments)}
    opts = CFTrainingArguments(**{k: v for k, v in vars(args).items() if k in names})
    out = train_cf(opts)
    print(f"checkpoint: {out}")
    return 0


__all__ = ["register_train", "run_train_cf"]
