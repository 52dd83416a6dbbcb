"""Stage 1 of A-LLMRec: collaborative ↔ text alignment (paper §4.1, Eq. 2–6).

* :class:`Stage1Config` / :class:`ALLMRecStage1Model` — item and text autoencoders + fine-tuned SBERT,
  a ``PreTrainedModel`` (``from_pretrained(dir)`` restores the SBERT saved in ``dir/sbert``).
* :func:`train_stage1` / ``allmrec train stage1`` — the training loop.
* :func:`load_stage1_item_embeddings` — ``{"joint": e, "text": q}`` for every item, as stage 2 reads them.

Attributes are imported lazily so that ``allmrec --help`` (which imports ``allmrec.alignment.cli``)
does not pay for torch/transformers; the first access registers the model with ``AutoConfig``/``AutoModel``.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Stage1Config": "configuration_stage1",
    "paper_beta": "configuration_stage1",
    "ALLMRecStage1Model": "modeling_stage1",
    "ALLMRecStage1PreTrainedModel": "modeling_stage1",
    "Autoencoder": "modeling_stage1",
    "Stage1Output": "modeling_stage1",
    "load_stage1_item_embeddings": "embeddings",
    "compute_item_embeddings": "embeddings",
    "alignment_report": "embeddings",
    "Stage1TrainingArguments": "training",
    "train_stage1": "training",
}

__all__ = list(_EXPORTS)

_REGISTERED = False


def register_auto_classes() -> None:
    """``AutoConfig``/``AutoModel.from_pretrained(stage1_dir)`` support (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from transformers import AutoConfig, AutoModel

    from .configuration_stage1 import Stage1Config
    from .modeling_stage1 import ALLMRecStage1Model

    AutoConfig.register(Stage1Config.model_type, Stage1Config, exist_ok=True)
    AutoModel.register(Stage1Config, ALLMRecStage1Model, exist_ok=True)
    _REGISTERED = True


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    register_auto_classes()
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
