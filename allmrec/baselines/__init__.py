"""The paper's baselines on A-LLMRec's footing (same prompts, candidates, scoring and results schema).

* **TALLRec** — LoRA (``peft``) on the LLM with the Figure-6 prompt: :func:`train_tallrec` /
  ``allmrec train tallrec``; saved as a standard PEFT adapter (+ allmrec sidecar).
* **LLM-Only** — the frozen LLM, zero-shot: :func:`evaluate_llm_only` / ``allmrec evaluate --model llm:NAME``.
* **MLP-LLM** — A-LLMRec without stage-1 alignment (raw CF embeddings → MLPs → LLM): :func:`train_mlpllm` /
  ``allmrec train mlpllm``; a normal stage-2 checkpoint.
* :func:`evaluate_checkpoint` — the ``allmrec evaluate`` entry for TALLRec adapters and ``llm:NAME``.

Attributes are imported lazily so that ``allmrec --help`` does not import torch/transformers.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "LoraSettings": "lora",
    "resolve_lora_targets": "lora",
    "build_lora_config": "lora",
    "add_lora": "lora",
    "TextOnlyConfig": "text_model",
    "TextOnlyRecommender": "text_model",
    "build_llm_only": "text_model",
    "load_tallrec": "text_model",
    "save_tallrec": "text_model",
    "TallRecTrainingArguments": "training",
    "train_tallrec": "training",
    "write_identity_alignment": "mlp_llm",
    "train_mlpllm": "mlp_llm",
    "evaluate_llm_only": "llm_only",
    "evaluate_text_model": "evaluate",
    "evaluate_checkpoint": "evaluate",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
