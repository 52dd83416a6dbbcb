"""Collaborative-filtering backbones: SASRec (the paper's), GRU4Rec, NextItNet, NCF.

Each is a ``PreTrainedModel`` with its own config (``model_type`` sasrec / gru4rec / nextitnet /
ncf), saved as safetensors, and implements :class:`~allmrec.cf.base.CFRecommenderMixin`.
Open a trained checkpoint with :func:`load_cf_model` (frozen, eval mode).

Attributes are imported lazily so that ``allmrec --help`` (which imports ``allmrec.cf.cli``)
does not pay for torch/transformers; the first access imports the models and registers them
with ``AutoConfig``/``AutoModel``.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "SASRecConfig": "sasrec",
    "SASRecModel": "sasrec",
    "GRU4RecConfig": "gru4rec",
    "GRU4RecModel": "gru4rec",
    "NextItNetConfig": "nextitnet",
    "NextItNetModel": "nextitnet",
    "NCFConfig": "ncf",
    "NCFModel": "ncf",
    "CFRecommenderMixin": "base",
    "CFPreTrainedModel": "base",
    "CFModelOutput": "base",
    "pad_sequences": "base",
    "CF_MODELS": "loading",
    "CF_MODEL_TYPES": "loading",
    "load_cf_model": "loading",
    "read_model_type": "loading",
    "register_auto_classes": "loading",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
    importlib.import_module(".loading", __name__).register_auto_classes()
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
