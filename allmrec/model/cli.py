"""``allmrec train stage2`` and ``allmrec recommend``.

The stage-2 options are generated from :class:`~allmrec.model.training.Stage2TrainingArguments` (one
source of truth for names, defaults and help). torch/transformers are imported inside the handlers.
"""

from __future__ import annotations

from ..training.checkpointing import cli_fields

import argparse
from dataclasses import MISSING

_TRAIN_DESCRIPTION = """\
Stage 2 of A-LLMRec (paper §4.2): train the projectors F_U (CF user representation -> LLM token) and
F_I (stage-1 joint item embedding -> LLM token) so that a frozen LLM, reading them as soft tokens in the
Figure-3 prompt, names the user's next item among 20 candidates. The paper trains only F_U and F_I (--recipe
paper); the default recipe also trains rank-8 LoRA adapters on the LLM and answers with one candidate label.

Writes OUT/ atomically: config.json, model.safetensors (projectors, the frozen CF model, stage-1 item
tables; never the LLM weights), item_catalogue.json and training_log.json.

Example (offline):
  allmrec train stage2 --data data/ml-100k --stage1 runs/stage1 --llm smollm2-135m-instruct --out runs/stage2
"""

_REQUIRED = ("data", "stage1", "llm", "out")
from .recipes import DEFAULT_RECIPE, RECIPE_NAMES  # noqa: E402  (light: no torch)
_CHOICES = {
    "prompt_style": ("paper", "official", "fig6"),
    "item_embedding": ("cf", "text", "auto"),
    "recipe": RECIPE_NAMES,
    "mixed_precision": ("auto", "no", "bf16", "fp16"),
    "llm_dtype": ("auto", "float32", "bfloat16", "float16"),
    "llm_quantization": ("none", "8bit", "4bit"),
    "domain": ("movie", "game", "item"),
}


def register_train(sub) -> None:
    from .training import FIELD_CHOICES, Stage2TrainingArguments

    choices = {**_CHOICES, **FIELD_CHOICES}
    p = sub.add_parser(
        "stage2",
        help="stage 2: project CF user/item embeddings into a frozen LLM (trains F_U and F_I only)",
        description=_TRAIN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for f in cli_fields(Stage2TrainingArguments):
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        if f.name == "progress":
            p.add_argument("--no-progress", dest="progress", action="store_false", help="disable progress bars")
            continue
        if f.type in (bool, "bool"):
            p.add_argument(flag, dest=f.name, action="store_true", help=help_text)
            continue
        kind = {"int": int, "int | None": int, "float": float, "float | None": float}.get(str(f.type), str)
        kwargs = {"dest": f.name, "type": kind, "help": help_text}
        if f.name in choices:
            kwargs["choices"] = choices[f.name]
        if f.name in _REQUIRED:
            kwargs["required"] = True
        elif f.default is not MISSING:
            kwargs["default"] = f.default
            if f.default is not None and "default" not in help_text:
                kwargs["help"] = f"{help_text} (default: {f.default})"
        p.add_argument(flag, **kwargs)
    p.set_defaults(func=run_train)


def run_train(args) -> int:
    from .training import arguments_from_namespace, train_stage2

    from ..training.prompt_loop import training_summary

    log = train_stage2(arguments_from_namespace(args))
    print(training_summary("stage 2", log, args.out))
    return 0


def register_recommend(sub) -> None:
    p = sub.add_parser(
        "recommend",
        help="rank candidate items for one user with an A-LLMRec checkpoint",
        description=(
            "One user: the item history (oldest first) and the candidates, as item ids ('1,2,3') or catalogue "
            "titles separated by '|' ('Toy Story (1995)|Heat (1995)'). Prints the candidates ranked by "
            "log P(answer | prompt), or with --mode generate the LLM's answer and the candidate it names."
        ),
    )
    p.add_argument("--model", required=True, help="stage-2 checkpoint directory or Hub id")
    p.add_argument("--history", required=True, help="item ids 'a,b,c' or titles 'T1|T2|T3', oldest first")
    p.add_argument("--candidates", required=True, help="item ids or titles, same format as --history")
    p.add_argument("--mode", choices=("rank", "generate"), default="rank", help="rank candidates (default) or generate one answer")
    p.add_argument("--item-embedding", choices=("cf", "text", "auto"), default=None,
                   help="F_I input (default: the checkpoint's setting)")
    p.add_argument("--llm", default=None, help="override the base LLM recorded in the checkpoint (id, folder or asset name)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_run_recommend)


def _run_recommend(args) -> int:
    from .inference import run_recommend

    return run_recommend(args)


__all__ = ["register_train", "register_recommend", "run_train"]
