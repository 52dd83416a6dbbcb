"""``recommendation_pipeline``: the ``next-item-recommendation`` pipeline for any allmrec recommender.

A-LLMRec checkpoints carry the pipeline in their own remote code (``pipeline(model=..., trust_remote_code=True)``);
this function also covers what has no ``config.json`` task of its own — TALLRec adapters (a PEFT folder) and
LLM-Only (``llm:NAME``) — and already-loaded models::

    from allmrec.pipeline import recommendation_pipeline
    rec = recommendation_pipeline("runs/tallrec")              # or "runs/allmrec", "llm:smollm2-135m-instruct"
    rec({"history": ["Star Wars (1977)"], "candidates": ["Heat (1995)", "Fargo (1996)"]})

Text-only models read nothing but titles, so they take titles without a catalogue; A-LLMRec needs catalogue
ids or exact catalogue titles (its soft tokens belong to catalogue items).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import CheckpointError


def load_recommender(model: str | Path, device: str | None = None, llm: str | None = None, dtype: str = "auto"):
    """An A-LLMRec checkpoint, a TALLRec adapter directory or ``llm:NAME`` → a model with ``recommend``."""
    from .baselines.text_model import LLM_PREFIX, build_llm_only, load_tallrec
    from .evaluation.cli import checkpoint_kind

    kind = checkpoint_kind(model)
    if kind == "llm":
        return build_llm_only(str(model)[len(LLM_PREFIX):], num_items=1, device=device, dtype=dtype)
    if kind == "tallrec":
        # num_items only matters for a plain adapter without allmrec's sidecar (titles are given as text)
        return load_tallrec(model, num_items=1, llm=llm, device=device, dtype=dtype)
    if kind == "allmrec":
        from .model.inference import load_for_inference

        return load_for_inference(model, llm=llm, device=device, llm_dtype=dtype)
    raise CheckpointError(f"{model} is a CF checkpoint: the pipeline serves LLM recommenders (A-LLMRec, TALLRec, "
                          f"LLM-Only); rank with `allmrec evaluate` instead")


def recommendation_pipeline(model: Any, device: str | None = None, llm: str | None = None, dtype: str = "auto", **kwargs):
    """A :class:`~allmrec.model.pipeline_allmrec.NextItemRecommendationPipeline` for ``model`` (a path / ``llm:NAME``
    as :func:`load_recommender` takes, or a loaded recommender); ``kwargs`` (``mode=``, ``top_k=``) become defaults."""
    import torch

    from .model.pipeline_allmrec import TASK, NextItemRecommendationPipeline

    if isinstance(model, (str, Path)):
        model = load_recommender(model, device=device, llm=llm, dtype=dtype)
    return NextItemRecommendationPipeline(model=model, tokenizer=getattr(model, "tokenizer", None), task=TASK,
                                          device=model.device if device is None else torch.device(device), **kwargs)


__all__ = ["recommendation_pipeline", "load_recommender"]
