"""What is being published: recognise a checkpoint directory and check it is whole before anything is uploaded.

Two kinds are publishable:

``allmrec``  an A-LLMRec stage-2 checkpoint (``allmrec train stage2``): ``config.json`` with
             ``model_type == "allmrec"``, ``model.safetensors`` (projectors F_U/F_I, the frozen CF model, the
             stage-1 item tables; never an ``llm.*`` tensor), ``item_catalogue.json`` (titles by item id) and,
             when saved with remote code, the ``.py`` files named by ``auto_map``.
``tallrec``  a TALLRec LoRA adapter (peft ``save_pretrained``): ``adapter_config.json`` naming the base model
             and ``adapter_model.safetensors`` (or ``.bin``).

The checks read only file headers (safetensors metadata, JSON), never the LLM, so they take milliseconds
even for large checkpoints. Every problem raises :class:`~allmrec.errors.CheckpointError` with one line
naming the file and what to do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from allmrec.errors import CheckpointError
from allmrec.utils.logging import get_logger

logger = get_logger("allmrec.hub")

ALLMREC = "allmrec"
TALLREC = "tallrec"
KINDS = (ALLMREC, TALLREC)

ALLMREC_WEIGHTS = "model.safetensors"
ALLMREC_CATALOGUE = "item_catalogue.json"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
TRAINING_LOG = "training_log.json"
#: allmrec's sidecar next to a TALLRec adapter (allmrec.baselines.text_model.SIDECAR_FILE): prompt settings,
#: dataset, the base LLM's short name
TALLREC_SIDECAR = "allmrec_baseline.json"
#: files the card replaces or that never belong on the Hub
NEVER_UPLOADED = {"README.md"}
#: top-level files of these kinds are uploaded; sub-folders (trainer checkpoints, optimizer states) are not
UPLOAD_SUFFIXES = (".json", ".safetensors", ".py", ".txt", ".model", ".jinja", ".bin")
#: tensors every A-LLMRec checkpoint must hold (the rest depends on the CF model)
ALLMREC_REQUIRED_TENSORS = ("user_projector.fc1.weight", "item_projector.fc1.weight", "item_joint", "item_text")


@dataclass
class CheckpointInfo:
    """A checked checkpoint directory."""

    kind: str
    path: Path
    config: dict[str, Any]
    files: list[str]
    training_log: dict[str, Any] | None = None
    sidecar: dict[str, Any] | None = None
    has_remote_code: bool = False
    tensor_count: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def base_model(self) -> str | None:
        """The frozen LLM the checkpoint was trained on (Hub id, local path or allmrec asset name)."""
        if self.kind == ALLMREC:
            return self.config.get("llm_name_or_path")
        return (self.sidecar or {}).get("llm") or self.config.get("base_model_name_or_path")

    @property
    def settings(self) -> dict[str, Any]:
        """Prompt / dataset settings: config.json (A-LLMRec) or the allmrec sidecar (TALLRec)."""
        return self.config if self.kind == ALLMREC else (self.sidecar or {})

    @property
    def total_bytes(self) -> int:
        return sum((self.path / f).stat().st_size for f in self.files)


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; {what}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is corrupt ({e.__class__.__name__}: {e}); re-save the checkpoint") from e


def _tensor_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name → shape from a safetensors header (no tensor data is read)."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise CheckpointError(f"{path} is missing; the save was incomplete or this is not a checkpoint — re-save it")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is corrupt ({e}); re-save the checkpoint") from e


def detect_kind(path: str | Path) -> str:
    """``allmrec`` or ``tallrec`` from the files in ``path`` (raises for anything else)."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path} is not a directory; pass the checkpoint folder written by `allmrec train stage2` "
                              f"or `allmrec train tallrec`")
    if (path / ADAPTER_CONFIG).is_file():
        return TALLREC
    if (path / "config.json").is_file():
        model_type = _read_json(path / "config.json", "").get("model_type")
        if model_type == ALLMREC:
            return ALLMREC
        raise CheckpointError(
            f"{path}/config.json has model_type {model_type!r}; `allmrec push` publishes A-LLMRec checkpoints "
            f"(model_type 'allmrec') and TALLRec LoRA adapters (adapter_config.json)"
        )
    raise CheckpointError(
        f"{path} holds neither config.json (A-LLMRec) nor adapter_config.json (TALLRec adapter); "
        f"pass the output folder of `allmrec train stage2` or `allmrec train tallrec`"
    )


def upload_files(path: Path) -> list[str]:
    """Top-level files that belong on the Hub, sorted; hidden files and sub-folders are skipped."""
    files, skipped = [], []
    for p in sorted(path.iterdir()):
        if p.name.startswith(".") or p.name in NEVER_UPLOADED:
            continue
        if p.is_dir():
            skipped.append(p.name + "/")
        elif p.suffix in UPLOAD_SUFFIXES:
            files.append(p.name)
        else:
            skipped.append(p.name)
    if skipped:
        logger.info("not uploading %s (only top-level %s files are published)", ", ".join(skipped), "/".join(UPLOAD_SUFFIXES))
    return files


def _check_code_files(path: Path, config: dict[str, Any]) -> bool:
    """Every module named by ``auto_map`` (and the CF model's) is present with its relative imports."""
    from transformers.dynamic_module_utils import get_relative_import_files

    refs = list((config.get("auto_map") or {}).values())
    refs += list(((config.get("cf_config") or {}).get("auto_map") or {}).values())
    modules = {ref.split("--")[-1].split(".")[0] for ref in refs if isinstance(ref, str)}
    for module in sorted(modules):
        module_file = path / f"{module}.py"
        if not module_file.is_file():
            raise CheckpointError(
                f"{module_file} is missing but config.json's auto_map names it; re-save the checkpoint with "
                f"save_pretrained (it copies the code files)"
            )
        for needed in get_relative_import_files(str(module_file)):
            if not Path(needed).is_file():
                raise CheckpointError(f"{needed} is missing ({module}.py imports it); re-save the checkpoint")
    return bool(config.get("auto_map"))


def _inspect_allmrec(path: Path) -> CheckpointInfo:
    config = _read_json(path / "config.json", "re-save the checkpoint")
    info = CheckpointInfo(kind=ALLMREC, path=path, config=config, files=upload_files(path))
    shapes = _tensor_shapes(path / ALLMREC_WEIGHTS)
    info.tensor_count = len(shapes)
    # LoRA adapters inside the LLM (llm_lora_rank > 0) are trained weights of this model; every other llm.* tensor
    # would be the base LLM, which a checkpoint never carries
    lora_keys = [k for k in shapes if k.startswith("llm.") and ".lora_" in k]
    llm_keys = [k for k in shapes if k.startswith("llm.") and ".lora_" not in k]
    if lora_keys and not int(config.get("llm_lora_rank") or 0):
        raise CheckpointError(f"{path / ALLMREC_WEIGHTS} holds LoRA adapter tensors (e.g. {lora_keys[0]}) but config.json "
                              "has llm_lora_rank 0: the weights and config.json come from different saves — re-save it")
    if llm_keys:
        raise CheckpointError(
            f"{path / ALLMREC_WEIGHTS} contains {len(llm_keys)} frozen-LLM tensors (e.g. {llm_keys[0]}); a checkpoint "
            f"must never carry the base LLM — re-save it with ALLMRecForRecommendation.save_pretrained"
        )
    missing = [k for k in ALLMREC_REQUIRED_TENSORS if k not in shapes]
    if missing:
        raise CheckpointError(f"{path / ALLMREC_WEIGHTS} lacks {', '.join(missing)}; it is not a complete A-LLMRec checkpoint")
    # The stored shapes must agree with config.json, or loading would fail later on the user's machine.
    hidden, cf_dim, latent = config.get("llm_hidden_size"), config.get("cf_hidden_size"), config.get("latent_dim")
    n_rows = int(config.get("num_items", -1)) + 1
    expected = {
        "user_projector.fc1.weight": (hidden, cf_dim),
        "item_projector.fc1.weight": (hidden, latent),
        "item_joint": (n_rows, latent),
        "item_text": (n_rows, latent),
    }
    for key, shape in expected.items():
        if tuple(shapes[key]) != tuple(shape):
            raise CheckpointError(
                f"{path / ALLMREC_WEIGHTS}: {key} has shape {tuple(shapes[key])} but config.json implies {tuple(shape)}; "
                f"the weights and config.json come from different saves — re-save the checkpoint"
            )
    catalogue = _read_json(path / ALLMREC_CATALOGUE, "the item catalogue (titles by id) is needed to build prompts; "
                           "re-save the checkpoint from a model that has item_titles")
    titles = catalogue.get("titles") if isinstance(catalogue, dict) else None
    if not isinstance(titles, list) or len(titles) != n_rows:
        raise CheckpointError(
            f"{path / ALLMREC_CATALOGUE} must hold {{\"titles\": [...]}} with {n_rows} entries (index 0 = padding); "
            f"got {len(titles) if isinstance(titles, list) else type(titles).__name__}"
        )
    info.has_remote_code = _check_code_files(path, config)
    if not info.has_remote_code:
        info.warnings.append(
            "config.json has no auto_map: the repository will need `pip install allmrec` to load "
            "(AutoModel with trust_remote_code will not work)"
        )
    return info


def _inspect_tallrec(path: Path) -> CheckpointInfo:
    config = _read_json(path / ADAPTER_CONFIG, "")
    if not isinstance(config, dict) or "peft_type" not in config:
        raise CheckpointError(f"{path / ADAPTER_CONFIG} has no peft_type; it is not a peft adapter config")
    if not config.get("base_model_name_or_path"):
        raise CheckpointError(
            f"{path / ADAPTER_CONFIG} records no base_model_name_or_path; peft cannot reload the adapter without it"
        )
    info = CheckpointInfo(kind=TALLREC, path=path, config=config, files=upload_files(path))
    weights = [path / name for name in ADAPTER_WEIGHTS if (path / name).is_file()]
    if not weights:
        raise CheckpointError(f"{path} has no {' or '.join(ADAPTER_WEIGHTS)}; the adapter save was incomplete — re-save it")
    if weights[0].suffix == ".safetensors":
        shapes = _tensor_shapes(weights[0])
        if not shapes:
            raise CheckpointError(f"{weights[0]} holds no tensors; re-save the adapter")
        info.tensor_count = len(shapes)
    else:
        info.warnings.append(f"{weights[0].name} is a pickle file; prefer safetensors (peft's default)")
    if (path / TALLREC_SIDECAR).is_file():
        sidecar = _read_json(path / TALLREC_SIDECAR, "")
        if not isinstance(sidecar, dict):
            raise CheckpointError(f"{path / TALLREC_SIDECAR} must hold a JSON object; re-save with `allmrec train tallrec`")
        info.sidecar = sidecar
    return info


def inspect_checkpoint(path: str | Path) -> CheckpointInfo:
    """Recognise and check the checkpoint in ``path`` (see the module docstring)."""
    path = Path(path)
    kind = detect_kind(path)
    info = _inspect_allmrec(path) if kind == ALLMREC else _inspect_tallrec(path)
    if (path / TRAINING_LOG).is_file():
        log = _read_json(path / TRAINING_LOG, "")
        info.training_log = log if isinstance(log, dict) else None
    for w in info.warnings:
        logger.warning("%s: %s", path, w)
    return info


__all__ = ["ALLMREC", "TALLREC", "KINDS", "CheckpointInfo", "detect_kind", "inspect_checkpoint", "upload_files"]
