"""The options every prompt-trained LLM model shares: A-LLMRec stage 2, MLP-LLM and TALLRec.

They are the ones :func:`allmrec.training.prompt_loop.run_prompt_training`, the sample builder and the LLM loader
read the same way for the three models, so they are declared (and checked) once: a help line or a default that
changed for one command and not the other would make the two models' budgets differ silently. What a model trains,
its optimiser and its prompt stay in its own arguments class, which also declares ``out``, ``epochs`` and
``batch_size`` (their defaults and help lines cite different papers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AllmrecError
from .checkpointing import ScalingArguments

MIXED_PRECISIONS = ("auto", "no", "bf16", "fp16")
LLM_QUANTIZATIONS = ("none", "8bit", "4bit")


@dataclass(kw_only=True)
class PromptTrainingArguments(ScalingArguments):
    """Sampling, budget, validation, LLM-loading and run options of ``allmrec train stage2 / mlpllm / tallrec``."""

    num_negatives: int = field(default=19, metadata={"help": "negatives per training prompt (paper: 19, i.e. 20 candidates)"})
    max_steps: int | None = field(default=None, metadata={"help": "stop after this many optimisation steps (demo budget)"})
    max_train_users: int | None = field(default=None, metadata={"help": "train on a seeded subset of this many users (demo budget)"})
    few_shot: int | None = field(default=None, metadata={"help": "train only on the prepared few-shot subset of K users (paper Table 6)"})
    valid_users: int = field(default=200, metadata={"help": "validation users for early stopping (seeded subset; 0 = no validation)"})
    eval_every: int | None = field(default=None, metadata={"help": "validate every N steps (default: after each epoch)"})
    patience: int = field(default=2, metadata={"help": "stop after this many validations without a better Hit@1"})
    domain: str | None = field(default=None, metadata={"help": "prompt wording movie/game/item (default: the dataset's)"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute the LLM's activations in backward (saves memory)"})
    llm_quantization: str = field(default="none", metadata={"help": "load the LLM in 8bit or 4bit with bitsandbytes (CUDA; the paper: 8-bit OPT-6.7B; QLoRA-style under TALLRec's LoRA) or none"})
    llm_device_map: str | None = field(default=None, metadata={"help": "device_map for the LLM (e.g. auto: spread over the visible GPUs; one process only)"})
    mixed_precision: str = field(default="auto", metadata={"help": "auto (bf16/fp16 on GPU; bf16 autocast on a CPU with AVX512-BF16 or AMX, fp32 on other CPUs), no, bf16, fp16"})
    llm_dtype: str = field(default="auto", metadata={"help": "LLM weight dtype: auto (bf16 on GPU, fp32 on CPU), float32, bfloat16, float16"})
    seed: int = field(default=0, metadata={"help": "seed of every random choice (sampling, initialisation, LoRA, subsets)"})
    log_every: int = field(default=10, metadata={"help": "log the running loss every N steps"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing --out directory"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def invalid(self, name: str, what: str):
        """Raise the one-line error of a bad option: ``--name=value is invalid: what``."""
        raise AllmrecError(f"--{name.replace('_', '-')}={getattr(self, name)!r} is invalid: {what}")

    def validate_prompt_training(self) -> None:
        """Check the shared options (and the subclass's ``epochs`` / ``batch_size`` / ``out``), then the scaling ones."""
        for name in ("epochs", "batch_size", "num_negatives", "log_every", "patience"):
            if getattr(self, name) <= 0:
                self.invalid(name, "must be a positive integer")
        for name in ("max_steps", "max_train_users", "few_shot", "eval_every"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                self.invalid(name, "must be a positive integer when given")
        if self.valid_users < 0:
            self.invalid("valid_users", "must be >= 0")
        if self.mixed_precision not in MIXED_PRECISIONS:
            self.invalid("mixed_precision", f"choose {', '.join(MIXED_PRECISIONS[:-1])} or {MIXED_PRECISIONS[-1]}")
        if self.llm_quantization not in LLM_QUANTIZATIONS:
            self.invalid("llm_quantization", f"choose {', '.join(LLM_QUANTIZATIONS[:-1])} or {LLM_QUANTIZATIONS[-1]}")
        self.validate_scaling()
        if Path(self.out).exists() and not self.overwrite and not self.resume_from:
            raise AllmrecError(f"output directory {self.out} already exists; pass --overwrite to replace it")
