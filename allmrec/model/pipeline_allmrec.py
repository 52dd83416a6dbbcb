"""The ``next-item-recommendation`` pipeline: one line to run a recommender checkpoint.

::

    from transformers import pipeline
    rec = pipeline(model="you/allmrec-ml100k", trust_remote_code=True)       # task read from config.json
    rec({"history": ["Star Wars (1977)", "Fargo (1996)"], "candidates": ["Heat (1995)", "Babe (1995)", ...]})
    # -> [{"item_id": 98, "title": "Heat (1995)", "score": -3.1, "rank": 1}, ...]   best first
    rec(inputs, mode="generate")   # -> {"answer": "...", "item_id": ..., "title": ..., "valid": True}
    rec([user_1, user_2, ...])     # batched: one result per user

Items are catalogue ids or exact catalogue titles. ``top_k`` keeps the best k. The model is anything with
``recommend(history, candidates)`` (A-LLMRec; allmrec's TALLRec / LLM-Only recommenders) and, for
``mode="generate"``, ``recommend_generate(history, candidates)``.

Like every file of a checkpoint's remote code this one imports only torch + transformers (+ its siblings).
``save_pretrained`` copies it into the checkpoint and records it under ``custom_pipelines`` in ``config.json``;
with allmrec installed the task is also registered in transformers' ``PIPELINE_REGISTRY``
(:func:`register_pipeline`).
"""

from __future__ import annotations

from typing import Any

from transformers import Pipeline

TASK = "next-item-recommendation"
#: the ``config.json`` entry that lets ``pipeline(model=..., trust_remote_code=True)`` find this class
CUSTOM_PIPELINES = {TASK: {"impl": "pipeline_allmrec.NextItemRecommendationPipeline", "pt": ["AutoModel"], "tf": [],
                           "type": "text"}}
MODES = ("rank", "generate")


class NextItemRecommendationPipeline(Pipeline):
    """``{"history": [...], "candidates": [...]}`` → the candidates ranked by the model (or its generated answer)."""

    def _sanitize_parameters(self, mode: str | None = None, top_k: int | None = None, **kwargs):
        if kwargs:
            raise TypeError(f"next-item-recommendation: unexpected arguments {sorted(kwargs)} (use mode=, top_k=)")
        forward, post = {}, {}
        if mode is not None:
            if mode not in MODES:
                raise ValueError(f"mode={mode!r}: choose one of {', '.join(MODES)}")
            forward["mode"] = mode
        if top_k is not None:
            if int(top_k) <= 0:
                raise ValueError(f"top_k={top_k!r} must be a positive integer")
            post["top_k"] = int(top_k)
        return {}, forward, post

    def preprocess(self, inputs: Any) -> dict:
        if not isinstance(inputs, dict) or "history" not in inputs or "candidates" not in inputs:
            raise ValueError('next-item-recommendation input: a dict {"history": [...], "candidates": [...]} '
                             f"(catalogue ids or titles), got {type(inputs).__name__}")
        history, candidates = list(inputs["history"]), list(inputs["candidates"])
        if not history:
            raise ValueError("history is empty: give at least one item the user interacted with")
        if not candidates:
            raise ValueError("candidates is empty: give the items to rank")
        return {"history": history, "candidates": candidates}

    def _forward(self, model_inputs: dict, mode: str = "rank") -> dict:
        if mode == "generate":
            if not hasattr(self.model, "recommend_generate"):
                raise ValueError(f"{type(self.model).__name__} cannot generate; use mode='rank'")
            return {"generated": self.model.recommend_generate(model_inputs["history"], model_inputs["candidates"])}
        return {"ranking": self.model.recommend(model_inputs["history"], model_inputs["candidates"])}

    def postprocess(self, model_outputs: dict, top_k: int | None = None):
        if "generated" in model_outputs:
            out = dict(model_outputs["generated"])
            out["valid"] = out.get("item_id") is not None  # the answer names one of the candidates exactly
            return out
        ranking = [{**r, "rank": i + 1} for i, r in enumerate(model_outputs["ranking"])]
        return ranking[:top_k] if top_k else ranking

    def _ensure_tensor_on_device(self, inputs, device):  # inputs are ids / titles, not tensors
        return inputs


def register_pipeline() -> None:
    """Register the task in transformers' ``PIPELINE_REGISTRY`` (idempotent), so that
    ``pipeline("next-item-recommendation", model=<checkpoint>)`` works without ``trust_remote_code``."""
    from transformers import AutoModel
    from transformers.pipelines import PIPELINE_REGISTRY

    if TASK not in PIPELINE_REGISTRY.get_supported_tasks():
        PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=NextItemRecommendationPipeline, pt_model=AutoModel,
                                            type="text")


__all__ = ["NextItemRecommendationPipeline", "register_pipeline", "TASK", "CUSTOM_PIPELINES"]
