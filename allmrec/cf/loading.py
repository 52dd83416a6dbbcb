"""The CF model registry: model_type → (config class, model class), Auto-class registration, and
:func:`load_cf_model`, the one way the rest of the package opens a CF checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import CheckpointError
from .base import quiet_hf_progress
from .gru4rec import GRU4RecConfig, GRU4RecModel
from .ncf import NCFConfig, NCFModel
from .nextitnet import NextItNetConfig, NextItNetModel
from .sasrec import SASRecConfig, SASRecModel

#: model_type (as written in config.json) → (config class, model class)
CF_MODELS = {
    "sasrec": (SASRecConfig, SASRecModel),
    "gru4rec": (GRU4RecConfig, GRU4RecModel),
    "nextitnet": (NextItNetConfig, NextItNetModel),
    "ncf": (NCFConfig, NCFModel),
}
CF_MODEL_TYPES = tuple(CF_MODELS)

def register_auto_classes() -> None:
    """Make ``AutoConfig``/``AutoModel.from_pretrained(cf_dir)`` work for the four backbones.

    Each model module registers itself when imported, and importing this module imports all
    four; the function exists so callers can say what they rely on. Idempotent.
    """
    from transformers import AutoConfig, AutoModel

    for model_type, (config_cls, model_cls) in CF_MODELS.items():
        AutoConfig.register(model_type, config_cls, exist_ok=True)
        AutoModel.register(config_cls, model_cls, exist_ok=True)


def read_model_type(path: str | Path) -> str:
    """``model_type`` from ``path/config.json``; CheckpointError if the file is missing/corrupt."""
    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        raise CheckpointError(f"{path} is not a checkpoint directory (no config.json)")
    try:
        model_type = json.loads(cfg.read_text(encoding="utf-8")).get("model_type")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as e:
        raise CheckpointError(f"{cfg} is corrupt ({e}); retrain or re-download the checkpoint") from e
    if not model_type:
        raise CheckpointError(f"{cfg} has no model_type")
    return str(model_type)


def load_cf_model(path: str | Path, device: str | None = None, freeze: bool = True):
    """Load a CF checkpoint written by ``allmrec train cf`` (or ``save_pretrained``).

    Returns the model in ``eval()`` mode with every parameter frozen (``requires_grad=False``),
    as A-LLMRec's stages use it. Raises :class:`~allmrec.errors.CheckpointError` when ``path``
    is missing, is not a CF checkpoint, or its weights are missing/corrupt/do not fit the config.
    """
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"CF checkpoint directory {path} does not exist; train one with `allmrec train cf`")
    model_type = read_model_type(path)
    if model_type not in CF_MODELS:
        raise CheckpointError(
            f"{path} holds a '{model_type}' checkpoint, not a CF model (expected one of {', '.join(CF_MODEL_TYPES)})"
        )
    if not any((path / f).is_file() for f in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")):
        raise CheckpointError(f"{path} has a config.json but no weights (model.safetensors); the save was incomplete")
    _, model_cls = CF_MODELS[model_type]
    try:
        with quiet_hf_progress():
            model, info = model_cls.from_pretrained(str(path), output_loading_info=True)
    except CheckpointError:
        raise
    except Exception as e:  # safetensors header errors, size mismatches, bad config values ...
        raise CheckpointError(f"cannot load the {model_type} checkpoint in {path}: {type(e).__name__}: {e}") from e
    # from_pretrained only *warns* about missing/mismatched tensors and leaves them random.
    problems = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if problems:
        raise CheckpointError(f"{path}/model.safetensors does not match its config.json: {problems}")
    if device is not None:
        model.to(device)
    model.eval()
    if freeze:
        model.requires_grad_(False)
    return model


__all__ = ["CF_MODELS", "CF_MODEL_TYPES", "register_auto_classes", "read_model_type", "load_cf_model"]
