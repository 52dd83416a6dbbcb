"""``allmrec evaluate`` for the text-only baselines: TALLRec adapters and LLM-Only (``--model llm:NAME``).

Scoring, matching and the results file are A-LLMRec's (:func:`allmrec.model.inference.evaluate_model`): same
stored candidates in stored order, same prompt machinery (without soft tokens), generate mode = greedy decoding
+ exact title match (plus the authors' lenient rule and ``valid_rate``), rank mode = log P(quoted title + EOS |
prompt) with pessimistic ties. Only ``model_type`` and a few provenance fields differ in the results.
"""

from __future__ import annotations

import time
from typing import Any

from ..errors import AllmrecError
from ..utils.logging import get_logger
from .text_model import LLM_PREFIX

logger = get_logger(__name__)


def evaluate_text_model(model, dataset, split: str = "test", mode: str = "generate", batch_size: int | None = None,
                        max_users: int | None = None, seed: int = 0, model_name: str | None = None,
                        command: str | None = None, timings: dict | None = None, progress: bool = True,
                        stop_at_answer: bool | None = None, cross_domain: bool = False) -> dict[str, Any]:
    """Evaluate a loaded :class:`~allmrec.baselines.text_model.TextOnlyRecommender` → results dict.

    ``cross_domain``: the model was trained on another dataset (paper Table 7); a text-only model reads titles only,
    so it scores this catalogue as it is (recorded in the results)."""
    from ..model.inference import evaluate_model

    if model.config.num_items != dataset.num_items:
        # LLM-Only is catalogue-agnostic; a TALLRec adapter is tied to what it was trained on (checked in evaluate_model)
        if model.config.model_type == "llm-only" or cross_domain:
            model.config.num_items = dataset.num_items
    results = evaluate_model(
        model, dataset, split=split, mode=mode, batch_size=batch_size, max_users=max_users, seed=seed,
        model_name=model_name, command=command, timings=timings, progress=progress, stop_at_answer=stop_at_answer,
    )
    # evaluate_model labels its output "allmrec"; the text-only models are their own model types.
    results["model_type"] = model.config.model_type
    results.pop("item_embedding", None)
    results["soft_tokens"] = False
    if cross_domain:
        results["cross_domain"] = True
    return results


def evaluate_checkpoint(args) -> dict[str, Any]:
    """``allmrec evaluate`` entry for ``--model llm:NAME`` (LLM-Only) and TALLRec / PEFT adapter directories.

    Reads ``args.model``, ``args.data``, ``args.split``, ``args.mode`` (None → generate), ``args.batch_size`` and,
    when present, ``args.max_users``, ``args.command``, ``args.device``, ``args.llm`` (override the base LLM),
    ``args.llm_dtype``, ``args.stop_at_answer``, ``args.prompt_style`` (LLM-Only). ``args.item_embedding`` is
    ignored (no soft tokens).
    """
    from ..data.dataset import PreparedDataset
    from .llm_only import evaluate_llm_only
    from .text_model import load_tallrec

    model_arg = str(args.model)
    mode = getattr(args, "mode", None) or "generate"
    common = dict(
        split=args.split, mode=mode, batch_size=getattr(args, "batch_size", None),
        max_users=getattr(args, "max_users", None), command=getattr(args, "command", None),
        stop_at_answer=getattr(args, "stop_at_answer", None),
    )
    device = getattr(args, "device", None)
    dtype = getattr(args, "llm_dtype", None) or "auto"
    placement = {"quantization": getattr(args, "llm_quantization", None) or "none",
                 "device_map": getattr(args, "llm_device_map", None)}
    if model_arg.startswith(LLM_PREFIX):
        name = model_arg[len(LLM_PREFIX):]
        if not name:
            raise AllmrecError("--model llm:NAME needs an LLM name after 'llm:' (e.g. llm:smollm2-135m-instruct)")
        return evaluate_llm_only(name, args.data, prompt_style=getattr(args, "prompt_style", None) or "fig6",
                                 device=device, llm_dtype=dtype, **placement, **common)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    dataset = PreparedDataset.load(args.data)
    timings["load_data"] = round(time.perf_counter() - start, 3)
    start = time.perf_counter()
    model = load_tallrec(model_arg, num_items=dataset.num_items, domain=dataset.domain, llm=getattr(args, "llm", None),
                         device=device, dtype=dtype, **placement)
    timings["load_model"] = round(time.perf_counter() - start, 3)
    return evaluate_text_model(model, dataset, model_name=model_arg, timings=timings,
                               cross_domain=bool(getattr(args, "cross_domain", False)), **common)


__all__ = ["evaluate_checkpoint", "evaluate_text_model"]
