"""How much work ``allmrec reproduce`` does per experiment: three named budgets plus per-field overrides.

``demo`` is a smoke run of every table on 2 CPU cores (the numbers are noise: 20 users, 3 LLM steps);
``cpu`` is a budget where A-LLMRec learns: the default ``index-lora`` recipe (one-label answers + LoRA r8) for
60 LLM steps after its matching pre-training, the same 60 steps for MLP-LLM (same recipe) and TALLRec, 200 seeded
test users per cell (one Hit@1 interval is about ±0.06), rank mode only: several hours on 2 cores, resumable
across runs; ``paper`` is the paper's schedule (§5.1 / Table 3) on every user, in both modes. Every budget
keeps the paper's own recipe as its own Table 1 row ("A-LLMRec (paper recipe)").

The cost constants below were measured on the 2-core CPU the project is developed on with SmolLM2-135M-Instruct
(fp32): they only feed the ``--dry-run`` estimate and the remaining-time line, never a decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..errors import AllmrecError
from ..model.recipes import DEFAULT_RECIPE, RECIPE_NAMES


@dataclass(frozen=True)
class ReproduceBudget:
    """Training and evaluation sizes of every cell (one budget for the whole report)."""

    name: str = field(metadata={"help": "the budget's name (demo, cpu, paper)"})
    cf_epochs: int = field(metadata={"help": "CF-RecSys epochs (paper: 200 with early stopping)"})
    stage1_epochs: int = field(metadata={"help": "stage-1 epochs (paper: 10)"})
    stage1_sbert_layers: int = field(metadata={"help": "top SBERT layers fine-tuned in stage 1 (0 = all, the paper)"})
    stage2_steps: int = field(metadata={"help": "stage-2 LLM steps of 4 users (0 = stage2_epochs whole epochs)"})
    stage2_epochs: int = field(metadata={"help": "stage-2 epochs when stage2_steps is 0 (paper: 5)"})
    lora_rank: int = field(metadata={"help": "LoRA rank of the extra 'A-LLMRec + LoRA' row (0 = no such row)"})
    tallrec_steps: int = field(metadata={"help": "TALLRec LoRA steps of 4 users (0 = tallrec_epochs whole epochs)"})
    tallrec_epochs: int = field(metadata={"help": "TALLRec epochs when tallrec_steps is 0"})
    eval_users: int = field(metadata={"help": "seeded test users scored per cell (0 = all)"})
    generate: bool = field(metadata={"help": "also score Table 1's LLM models in generate mode (the paper's protocol)"})
    genre_users: int = field(metadata={"help": "users asked the favourite-genre question (Figure 4)"})
    valid_users: int = field(default=0, metadata={"help": "stage-2 / TALLRec validation users for early stopping (0 = none)"})
    eval_every: int = field(default=0, metadata={"help": "with valid_users: validate every N LLM steps, a learning curve in the report (0 = after each epoch)"})
    all_targets: bool = field(default=True, metadata={"help": "plan Table 1's A-LLMRec_all row (§5.4.2: stage 1 --all-items, stage 2 --targets all), the costliest row"})
    stage2_recipe: str = field(default=DEFAULT_RECIPE, metadata={"help": "stage-2 recipe of the A-LLMRec rows, MLP-LLM and every stage-2 ablation (allmrec train stage2 --recipe); the paper-recipe row keeps paper"})

    def with_overrides(self, text: str | None) -> "ReproduceBudget":
        """``"stage2_steps=2,eval_users=8"`` → a copy with those fields changed (values parsed as the field's type)."""
        if not text:
            return self
        types = {f.name: type(getattr(self, f.name)) for f in fields(self)}
        changes: dict[str, Any] = {}
        for part in (p.strip() for p in text.split(",") if p.strip()):
            key, sep, value = part.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or key not in types or key == "name":
                raise AllmrecError(f"--set {part!r}: expected FIELD=VALUE with FIELD one of "
                                   f"{', '.join(k for k in types if k != 'name')}")
            try:
                changes[key] = value.strip().lower() in ("1", "true", "yes") if types[key] is bool else types[key](value.strip())
            except ValueError as e:
                raise AllmrecError(f"--set {part!r}: {value!r} is not a {types[key].__name__}") from e
            if types[key] is int and changes[key] < 0:
                raise AllmrecError(f"--set {part!r}: must be >= 0")
        if changes.get("stage2_recipe", self.stage2_recipe) not in RECIPE_NAMES:
            raise AllmrecError(f"--set stage2_recipe={changes['stage2_recipe']!r}: must be one of {', '.join(RECIPE_NAMES)}")
        return replace(self, **changes)


BUDGETS: dict[str, ReproduceBudget] = {
    "demo": ReproduceBudget(name="demo", cf_epochs=10, stage1_epochs=1, stage1_sbert_layers=1, stage2_steps=3,
                            stage2_epochs=1, lora_rank=0, tallrec_steps=3, tallrec_epochs=1, eval_users=20,
                            generate=False, genre_users=10),
    # lora_rank 0: index-lora already trains LoRA on the LLM, so there is no separate "A-LLMRec + LoRA" row
    "cpu": ReproduceBudget(name="cpu", cf_epochs=60, stage1_epochs=3, stage1_sbert_layers=2, stage2_steps=60,
                           stage2_epochs=1, lora_rank=0, tallrec_steps=60, tallrec_epochs=1, eval_users=200,
                           generate=False, genre_users=100),
    "paper": ReproduceBudget(name="paper", cf_epochs=200, stage1_epochs=10, stage1_sbert_layers=0, stage2_steps=0,
                             stage2_epochs=5, lora_rank=0, tallrec_steps=0, tallrec_epochs=5, eval_users=0,
                             generate=True, genre_users=0, valid_users=200),
}

#: seconds, measured on 2 CPU cores with SmolLM2-135M-Instruct fp32 and MiniLM (see the module docstring)
COST = {
    "process": 25.0,            # imports + loading the LLM / data per command
    "cf_epoch": 1.1,            # SASRec on ml-100k (943 users), validation included
    "stage1_epoch": 20.0,       # MiniLM, top 2 layers, 943 users
    "stage1_all_items_epoch": 403.0,  # the same with --all-items (every position of every sequence), measured
    "stage2_step": 17.0,        # listwise recipe (20 candidate answers per prompt), batch 4 (LoRA: ~21)
    "stage2_step_token": 6.2,   # paper recipe (token cross-entropy on the answer), batch 4: the cpu report's 60 steps
    "stage2_step_index": 9.0,   # index-lora recipe, batch 4 (measured 6.0, 8.9 and 14.4 on three machines)
    "stage2_match_pretrain": 25.0,
    "tallrec_step": 6.0,        # the cpu report: 60 steps in 388 s
    "rank_user": 1.2,           # 20 title candidates, packed scoring (the cpu report: 200 users in 256-280 s)
    "rank_user_index": 0.7,     # one-label answers: one forward pass per user (943 users in 10.5 min)
    "generate_user": 3.0,       # title answers, greedy until the closing quote (--stop-at-answer)
    "generate_user_index": 0.9, # one-label answers: the rank pass plus a few decoding steps
    "genre_user": 1.5,
    "cf_eval": 10.0,
}


def get_budget(name: str, overrides: str | None = None) -> ReproduceBudget:
    if name not in BUDGETS:
        raise AllmrecError(f"--budget must be one of {', '.join(BUDGETS)}, got {name!r}")
    return BUDGETS[name].with_overrides(overrides)


__all__ = ["ReproduceBudget", "BUDGETS", "COST", "get_budget"]
