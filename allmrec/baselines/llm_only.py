"""LLM-Only (paper §5.1 baselines): the frozen LLM, zero-shot, on A-LLMRec's task.

Same prompt as A-LLMRec without the soft tokens, same stored candidates, same generate / rank scoring and
results schema (see :mod:`allmrec.baselines.evaluate`). Nothing is trained, so there is no checkpoint: the
model is named on the command line, ``allmrec evaluate --model llm:smollm2-135m-instruct --data D ...``, or
called from Python::

    from allmrec.baselines import evaluate_llm_only
    results = evaluate_llm_only("smollm2-135m-instruct", "data/ml-100k", split="test", mode="rank", max_users=100)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .text_model import LLM_PREFIX


def evaluate_llm_only(
    llm_name: str,
    data_dir: str | Path,
    split: str = "test",
    mode: str = "generate",
    max_users: int | None = None,
    out: str | Path | None = None,
    batch_size: int | None = None,
    prompt_style: str = "fig6",
    device: str | None = None,
    llm_dtype: str = "auto",
    quantization: str = "none",
    device_map: str | None = None,
    stop_at_answer: bool | None = None,
    seed: int = 0,
    progress: bool = True,
    command: str | None = None,
    llm=None,
    tokenizer=None,
) -> dict[str, Any]:
    """LLM-Only: the frozen LLM, zero-shot, on the stored candidates of ``split`` → results dict.

    Args:
        llm_name: Hub id, local folder or asset name (``smollm2-135m-instruct``).
        data_dir: prepared dataset directory.
        mode: ``generate`` (the paper's protocol) or ``rank``.
        max_users: a seeded subset of users (``None`` = all).
        out: also write the results JSON here.
        prompt_style: ``fig6`` (Appendix A: the LLM-Only / TALLRec prompt) or ``paper`` (§5.2.1: "the same as
            Figure 3 without user representation and item embeddings").
        stop_at_answer: end generation at the answer's closing quote (exact Hit@1 unchanged; default: no, as
            the official code).
        llm / tokenizer: an already loaded LLM (tests, demos); ``llm_name`` then only labels the results.
    """
    from ..data.dataset import PreparedDataset
    from ..evaluation.results import write_results
    from .evaluate import evaluate_text_model
    from .text_model import build_llm_only

    timings: dict[str, float] = {}
    start = time.perf_counter()
    dataset = PreparedDataset.load(data_dir)
    timings["load_data"] = round(time.perf_counter() - start, 3)
    start = time.perf_counter()
    model = build_llm_only(llm_name, dataset.num_items, domain=dataset.domain, prompt_style=prompt_style,
                           device=device, dtype=llm_dtype, llm=llm, tokenizer=tokenizer,
                           quantization=quantization, device_map=device_map)
    timings["load_model"] = round(time.perf_counter() - start, 3)
    results = evaluate_text_model(model, dataset, split=split, mode=mode, batch_size=batch_size, max_users=max_users,
                                  seed=seed, model_name=f"{LLM_PREFIX}{llm_name}", command=command, timings=timings,
                                  progress=progress, stop_at_answer=stop_at_answer)
    if out is not None:
        write_results(out, results)
    return results


#: short alias: ``allmrec.baselines.llm_only.evaluate(...)``
evaluate = evaluate_llm_only

__all__ = ["evaluate_llm_only", "evaluate"]
