"""Stage 2 of A-LLMRec: the frozen LLM with CF soft tokens (paper §4.2).

* :class:`ALLMRecConfig` / :class:`ALLMRecForRecommendation` — config and model (``from_pretrained`` /
  ``save_pretrained`` without the LLM weights); these two files and their siblings ``prompts.py``,
  ``processing_allmrec.py`` and ``llm_scoring.py`` need only torch + transformers (Hub remote code).
* :class:`PromptBuilder` — the Fig. 3 / official / Fig. 6 prompts (also without soft tokens, for baselines).
* :func:`greedy_generate` / :func:`continuation_scores` — generate and rank mode on any causal LM from
  ``inputs_embeds`` (shared with the text-only baselines).
* :mod:`~allmrec.model.matching` — parsing generated answers, exact and lenient Hit@1.
* :class:`NextItemRecommendationPipeline` — the ``next-item-recommendation`` ``pipeline()`` task (shipped in every
  checkpoint's remote code, registered in transformers' ``PIPELINE_REGISTRY`` here).
* :func:`train_stage2` / ``allmrec train stage2``; :func:`evaluate_checkpoint` / ``allmrec evaluate``;
  ``allmrec recommend``.

Attributes are imported lazily so that ``allmrec --help`` does not import torch/transformers; the first
access registers the model with ``AutoConfig``/``AutoModel``.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ALLMRecConfig": "configuration_allmrec",
    "ALLMRecConfigError": "configuration_allmrec",
    "ALLMRecCheckpointError": "configuration_allmrec",
    "ALLMRecForRecommendation": "modeling_allmrec",
    "ALLMRecPreTrainedModel": "modeling_allmrec",
    "ALLMRecProjector": "modeling_allmrec",
    "ALLMRecOutput": "modeling_allmrec",
    "load_llm": "modeling_allmrec",
    "left_pad_histories": "modeling_allmrec",
    "greedy_generate": "llm_scoring",
    "continuation_scores": "llm_scoring",
    "Prompt": "prompts",
    "PromptBuilder": "prompts",
    "encode_prompts": "processing_allmrec",
    "encode_target": "processing_allmrec",
    "setup_placeholder_tokens": "processing_allmrec",
    "normalize_title": "matching",
    "parse_answer": "matching",
    "match_candidate": "matching",
    "lenient_hit": "matching",
    "NextItemRecommendationPipeline": "pipeline_allmrec",
    "evaluate_model": "inference",
    "evaluate_checkpoint": "inference",
    "generation_metrics": "inference",
    "load_for_inference": "inference",
    "Stage2TrainingArguments": "training",
    "train_stage2": "training",
}

__all__ = list(_EXPORTS) + ["register_auto_classes"]

_REGISTERED = False


def register_auto_classes() -> None:
    """``AutoConfig``/``AutoModel`` support for ``model_type == "allmrec"`` (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from transformers import AutoConfig, AutoModel

    from .configuration_allmrec import ALLMRecConfig
    from .modeling_allmrec import ALLMRecForRecommendation

    AutoConfig.register(ALLMRecConfig.model_type, ALLMRecConfig, exist_ok=True)
    AutoModel.register(ALLMRecConfig, ALLMRecForRecommendation, exist_ok=True)
    from .pipeline_allmrec import register_pipeline

    register_pipeline()  # pipeline("next-item-recommendation", model=...) without trust_remote_code
    _REGISTERED = True


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    if _EXPORTS[name] in ("configuration_allmrec", "modeling_allmrec"):
        register_auto_classes()
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
