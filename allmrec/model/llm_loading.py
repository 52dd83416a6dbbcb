"""How the frozen LLM is loaded: dtype, bitsandbytes 8-/4-bit quantisation, ``device_map``.

The paper ran OPT-6.7B in 8-bit (the authors' ``load_in_8bit=True``); a 7B model in bf16 needs ~14 GB, in
8-bit ~7 GB, in 4-bit ~4 GB. The options here are passed to ``AutoModelForCausalLM.from_pretrained``:

* ``llm_dtype``: ``auto`` (bf16 on a GPU that supports it, fp16 otherwise, fp32 on CPU), ``float32``,
  ``bfloat16`` (also fast on CPUs with AMX / AVX512-BF16), ``float16``;
* ``quantization``: ``none``, ``8bit`` (LLM.int8) or ``4bit`` (NF4, compute in ``llm_dtype``) through
  bitsandbytes — CUDA only, ``pip install "allmrec[quantization]"``. The LLM is frozen, so quantising it
  costs accuracy only in the forward pass; F_U/F_I (or LoRA) stay in full precision.
* ``device_map``: where the LLM's layers go. Quantised models are loaded straight onto this process's GPU
  (``{"": "cuda:<rank>"}``); ``auto`` spreads a model too big for one GPU over all visible GPUs (inference,
  single process only). The small trainable parts are then placed next to the LLM's input embeddings by
  :func:`place_model`, without moving the LLM.
"""

from __future__ import annotations

from typing import Any

from ..errors import AllmrecError

DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")
QUANTIZATION_CHOICES = ("none", "8bit", "4bit")


def resolve_llm_dtype(name: str, device: str):
    """``auto`` → bfloat16 on a GPU that supports it (fp16 otherwise), float32 on CPU."""
    import torch

    if name == "auto":
        if str(device).startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in table:
        raise AllmrecError(f"--llm-dtype must be one of {', '.join(DTYPE_CHOICES)}, got {name!r}")
    return table[name]


def llm_load_kwargs(llm_dtype: str = "auto", device: str = "cpu", quantization: str = "none",
                    device_map: str | None = None) -> dict[str, Any]:
    """Keyword arguments for ``from_pretrained`` of the frozen LLM (see the module docstring)."""
    quantization = quantization or "none"
    if quantization not in QUANTIZATION_CHOICES:
        raise AllmrecError(f"--llm-quantization must be one of {', '.join(QUANTIZATION_CHOICES)}, got {quantization!r}")
    dtype = resolve_llm_dtype(llm_dtype, device)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if quantization != "none":
        if not str(device).startswith("cuda"):
            raise AllmrecError(f"--llm-quantization {quantization} needs a CUDA GPU (bitsandbytes); this process runs on {device}")
        try:
            import bitsandbytes  # noqa: F401
            from transformers import BitsAndBytesConfig
        except ImportError as e:
            raise AllmrecError(f"--llm-quantization {quantization} needs bitsandbytes: pip install 'allmrec[quantization]' ({e})") from e
        if quantization == "8bit":
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        else:
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype, bnb_4bit_use_double_quant=True,
            )
        kwargs["device_map"] = {"": str(device)}  # bitsandbytes weights are created on the GPU, never moved
    if device_map:
        kwargs["device_map"] = {"": str(device)} if device_map == "process" else device_map
    return kwargs


def llm_is_placed(kwargs: dict[str, Any]) -> bool:
    """True when ``from_pretrained`` itself put the LLM on its device(s) (quantised or ``device_map``)."""
    return "device_map" in kwargs


def place_model(model, device, llm=None):
    """Move ``model`` to ``device``; with ``llm`` given (already placed by ``device_map``), move everything
    else only — a quantised or multi-GPU LLM must not be moved as a whole."""
    import itertools

    import torch

    if llm is None:
        return model.to(torch.device(device))
    device = llm.get_input_embeddings().weight.device  # the soft tokens enter the LLM here
    kept = {id(t) for t in itertools.chain(llm.parameters(), llm.buffers())}
    for module in model.modules():
        for name, p in module._parameters.items():
            if p is not None and id(p) not in kept:
                p.data = p.data.to(device)
        for name, b in module._buffers.items():
            if b is not None and id(b) not in kept:
                module._buffers[name] = b.to(device)
    return model


__all__ = ["DTYPE_CHOICES", "QUANTIZATION_CHOICES", "resolve_llm_dtype", "llm_load_kwargs", "llm_is_placed", "place_model"]
