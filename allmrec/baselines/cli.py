"""``allmrec train tallrec`` and ``allmrec train mlpllm`` (the trainable baselines).

Options are generated from the argument dataclasses (one source of truth for names, defaults and help):
:class:`~allmrec.baselines.training.TallRecTrainingArguments` for TALLRec, stage 2's
:class:`~allmrec.model.training.Stage2TrainingArguments` (minus ``--stage1`` / ``--item-embedding``) for
MLP-LLM. torch/transformers/peft are imported inside the handlers. LLM-Only has nothing to train: it is
evaluated with ``allmrec evaluate --model llm:NAME``.
"""

from __future__ import annotations

from ..training.checkpointing import cli_fields

import argparse
from dataclasses import MISSING, fields

_TALLREC_DESCRIPTION = """\
TALLRec (Bao et al., RecSys 2023) on A-LLMRec's task, as the A-LLMRec paper re-ran it (Appendix A): LoRA
(peft; r=8, alpha=16, dropout 0.05 on the attention query/value projections of the architecture) on the
LLM, trained to name the next item among 20 candidate titles from the Figure-6 prompt (history titles +
candidate titles, no soft tokens); target = the quoted title + EOS, loss on it only. Same samples,
candidates, batch (4), epochs (<= 5) and early stopping (validation Hit@1) as stage 2. Only the LoRA
weights train.

Writes OUT/ atomically: a standard PEFT adapter (adapter_config.json whose base_model_name_or_path is the
local base-LLM folder, adapter_model.safetensors, README.md), the tokenizer, allmrec_baseline.json (prompt
settings, dataset, the LLM's short name) and training_log.json. Load it with
AutoPeftModelForCausalLM.from_pretrained(OUT) or evaluate it with `allmrec evaluate --model OUT`.

Example (offline, a quick CPU run):
  allmrec train tallrec --data data/ml-100k --llm smollm2-135m-instruct --out runs/tallrec \\
      --max-steps 20 --valid-users 50
"""

_MLPLLM_DESCRIPTION = """\
MLP-LLM (A-LLMRec paper, Table 1): A-LLMRec without stage-1 alignment. The CF model's user representation
and raw item embeddings E_i are projected into the frozen LLM by the stage-2 MLPs F_U / F_I; prompt,
samples, loss, budget, early stopping and checkpoint format are stage 2's (the same trainer runs).
Writes a stage-2 checkpoint (config.json records baseline "mlp-llm"); evaluate it with `allmrec evaluate`.

Example (offline):
  allmrec train mlpllm --data data/ml-100k --cf-model runs/cf/sasrec --llm smollm2-135m-instruct --out runs/mlpllm
"""

_COMMON_CHOICES = {
    "prompt_style": ("fig6", "paper", "official"),
    "mixed_precision": ("auto", "no", "bf16", "fp16"),
    "llm_dtype": ("auto", "float32", "bfloat16", "float16"),
    "llm_quantization": ("none", "8bit", "4bit"),
    "soft_token_norm": ("none", "embedding"),
    "domain": ("movie", "game", "item"),
}
# the stage-2 budget flag is --valid-users; --eval-users is accepted as an alias
_ALIASES = {"valid_users": ["--eval-users"]}


def _add_dataclass_options(p, cls, required=(), skip=(), choices=None) -> None:
    choices = dict(_COMMON_CHOICES, **(choices or {}))
    for f in cli_fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        if f.name == "progress":
            p.add_argument("--no-progress", dest="progress", action="store_false", help="disable progress bars")
            continue
        if str(f.type) in ("bool", "<class 'bool'>"):
            p.add_argument(flag, dest=f.name, action="store_true", help=help_text)
            continue
        kwargs = {"dest": f.name, "help": help_text}
        if str(f.type).startswith("list["):
            kwargs["nargs"] = "+"
        else:
            kwargs["type"] = {"int": int, "int | None": int, "float": float, "float | None": float}.get(str(f.type), str)
        if f.name in choices:
            kwargs["choices"] = choices[f.name]
        if f.name in required:
            kwargs["required"] = True
        elif f.default is not MISSING:
            kwargs["default"] = f.default
            if f.default is not None and "default" not in help_text:
                kwargs["help"] = f"{help_text} (default: {f.default})"
        p.add_argument(flag, *_ALIASES.get(f.name, []), **kwargs)


def register_train(sub) -> None:
    from ..model.training import Stage2TrainingArguments
    from .training import TallRecTrainingArguments

    p = sub.add_parser(
        "tallrec",
        help="TALLRec baseline: LoRA-tune the LLM on the Figure-6 prompt (PEFT adapter output)",
        description=_TALLREC_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_dataclass_options(p, TallRecTrainingArguments, required=("data", "llm", "out"))
    p.set_defaults(func=run_train_tallrec)

    p = sub.add_parser(
        "mlpllm",
        help="MLP-LLM baseline: stage 2 on raw CF embeddings (no stage-1 alignment)",
        description=_MLPLLM_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_dataclass_options(p, Stage2TrainingArguments, required=("data", "cf_model", "llm", "out"),
                           skip=("stage1", "item_embedding"), choices={"prompt_style": ("paper", "official", "fig6")})
    p.set_defaults(func=run_train_mlpllm)


def run_train_tallrec(args) -> int:
    from .training import arguments_from_namespace, train_tallrec

    from ..training.prompt_loop import training_summary

    log = train_tallrec(arguments_from_namespace(args))
    print(training_summary("TALLRec", log, args.out, f", {log['trainable_parameters']:,} trainable LoRA parameters"))
    return 0


def run_train_mlpllm(args) -> int:
    from ..model.training import Stage2TrainingArguments
    from .mlp_llm import train_mlpllm

    names = {f.name for f in fields(Stage2TrainingArguments)}
    values = {k: v for k, v in vars(args).items() if k in names}
    from ..training.prompt_loop import training_summary

    log = train_mlpllm(Stage2TrainingArguments(stage1="", item_embedding="cf", **values))
    print(training_summary("MLP-LLM", log, args.out))
    return 0


__all__ = ["register_train", "run_train_tallrec", "run_train_mlpllm"]
