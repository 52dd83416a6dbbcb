"""Stage-2 recipes: named presets of :class:`~allmrec.model.training.Stage2TrainingArguments`.

This table is the one place that says which recipe is the default. ``allmrec train stage2``, ``allmrec demo``,
``allmrec reproduce`` and the benchmarks read :data:`DEFAULT_RECIPE` from here; no other file names it.
The module imports nothing heavy, so the command-line parsers can read it without torch.

* ``paper``: §5.1 / Eq. 8 exactly (frozen LLM, token cross-entropy on the target title, last item as target).
* ``listwise``: not in the paper. Listwise cross-entropy of the target among the 20 candidates' answer
  likelihoods plus the token loss, soft tokens before the titles, standardised inputs, every position a target, and
  a matching loss run alone before the LLM steps. The LLM stays frozen.
* ``index-lora`` (the default): ``listwise`` with one-label answers (candidates labelled (A)..(T), the answer is
  one token, so the listwise loss puts all of its gradient on the choice and a step costs a third of a title step)
  and LoRA r8 on the LLM's attention, which learns to read the soft tokens that a frozen 135M LLM follows only half
  of the time. The best measured on ml-100k with SmolLM2-135M-Instruct (docs/training.md). The paper keeps the LLM
  frozen: use ``--recipe paper`` for the paper's setting.
"""

from __future__ import annotations

from typing import Any

#: ``--recipe`` presets: the value of every field the user leaves unset
RECIPES: dict[str, dict[str, Any]] = {
    "paper": {"objective": "token", "listwise_normalization": "mean", "targets": "last", "prompt_layout": "paper",
              "input_standardization": "none", "soft_token_norm": "none", "lr": 1e-4, "lr_schedule": "constant",
              "warmup_steps": 0, "match_weight": 0.0, "match_pretrain_epochs": 0, "user_token_teacher": 0.0,
              "answer_format": "title", "llm_lora_rank": 0},
    "listwise": {"objective": "token+listwise", "listwise_normalization": "mean", "targets": "all", "prompt_layout": "copy",
                 "input_standardization": "zscore", "soft_token_norm": "none", "lr": 1e-3, "lr_schedule": "cosine",
                 "warmup_steps": 10, "match_weight": 1.0, "match_pretrain_epochs": 20, "user_token_teacher": 0.0,
                 "answer_format": "title", "llm_lora_rank": 0},
}
RECIPES["index-lora"] = {**RECIPES["listwise"], "answer_format": "index", "llm_lora_rank": 8, "lora_lr": 6e-4}

#: the recipe of ``allmrec train stage2`` without ``--recipe``, of ``allmrec demo`` and of ``allmrec reproduce``
DEFAULT_RECIPE = "index-lora"
RECIPE_NAMES = tuple(RECIPES)

__all__ = ["RECIPES", "RECIPE_NAMES", "DEFAULT_RECIPE"]
