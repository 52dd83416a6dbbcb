"""Build the ``Accelerator`` of a training run.

Every ``allmrec train …`` command runs the same way as ``allmrec …`` (one process) and under
``accelerate launch [--num_processes N] -m allmrec …`` (one process per device, or gloo processes on a
CPU): the launcher sets the environment (``RANK``, ``WORLD_SIZE``, ``ACCELERATE_MIXED_PRECISION`` …) and
``Accelerator()`` reads it. Our ``--mixed-precision auto`` defers to the launcher's choice when it made
one, else picks bf16 (fp16 without bf16 support) on a GPU; on a CPU it picks bf16 for the LLM trainers (stage 2,
MLP-LLM, TALLRec: ``cpu_bf16=True``) when the CPU has native bf16 matrix instructions (AVX512-BF16 or AMX), and
fp32 otherwise. The CF models and stage 1 keep fp32 on a CPU under ``auto`` (bf16 was measured faster only for the
LLM step; their small matrices were not measured), so their results stay those of fp32; ``--mixed-precision bf16``
asks for it.

Why bf16 on such CPUs: measured on a 2-core AMD EPYC with avx512_bf16 (torch 2.13), a 2048x576 by 576x1536
matmul runs at 123 GFLOP/s in fp32 and 356 GFLOP/s in bf16, and an ``index-lora`` stage-2 step is several times
faster under ``torch.autocast("cpu", torch.bfloat16)`` (``benchmarks/efficiency.py --mixed-precision``). Without
those instructions bf16 is emulated and slower than fp32, so ``auto`` keeps fp32 there.
"""

from __future__ import annotations

import os

from ..errors import AllmrecError

MIXED_PRECISION_CHOICES = ("auto", "no", "bf16", "fp16")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (AVX512-BF16 or AMX-BF16), read from the kernel's CPU flags."""
    try:
        flags = set()
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags.update(line.split(":", 1)[1].split())
                    break
        return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:  # not Linux: no cheap reliable probe, keep fp32
        return False


def resolve_mixed_precision(requested: str = "auto", cpu_bf16: bool = False) -> str:
    """``auto`` → the launcher's ``--mixed_precision`` if given, else bf16/fp16 on CUDA, bf16 on a CPU with
    native bf16 (:func:`cpu_has_native_bf16`) when ``cpu_bf16`` (the LLM trainers), ``no`` otherwise on a CPU.

    On a CPU, an explicit bf16 is honoured (autocast to bf16; the weights stay fp32) and fp16 falls back to ``no``
    (CPU fp16 matmuls are emulated).
    """
    import torch

    if requested not in MIXED_PRECISION_CHOICES:
        raise AllmrecError(f"--mixed-precision must be one of {', '.join(MIXED_PRECISION_CHOICES)}, got {requested!r}")
    cuda = torch.cuda.is_available()
    if requested == "auto":
        launcher = os.environ.get("ACCELERATE_MIXED_PRECISION")
        if launcher in ("no", "bf16", "fp16"):
            requested = launcher
        elif not cuda:
            return "bf16" if cpu_bf16 and cpu_has_native_bf16() else "no"
        else:
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if cuda:
        return requested
    return "bf16" if requested == "bf16" else "no"


def build_accelerator(mixed_precision: str = "auto", find_unused_parameters: bool = False, cpu_bf16: bool = False):
    """An ``Accelerator`` for one run.

    accelerate keeps one process-wide ``AcceleratorState`` and refuses a second Accelerator with another
    precision ("already been initialized"); running two commands in one Python process (tests, notebooks,
    ``allmrec demo``) would break. The precision-specific part of the state is dropped in that case; the
    process group (``PartialState``) is kept.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import DistributedDataParallelKwargs

    precision = resolve_mixed_precision(mixed_precision, cpu_bf16)
    state = AcceleratorState._shared_state
    if state and str(state.get("_mixed_precision", precision)) != precision:
        AcceleratorState._reset_state(reset_partial_state=False)
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=True)] if find_unused_parameters else []
    # cpu=True without CUDA: accelerate only recognises a CPU multi-process launch (gloo) when told so.
    return Accelerator(mixed_precision=precision, kwargs_handlers=handlers, cpu=not _cuda())


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def partial_state():
    """accelerate's process-group singleton (initialised from the launcher's environment, gloo on CPU)."""
    from accelerate import PartialState

    return PartialState(cpu=not _cuda())


def process_device() -> str:
    """The device of this process: ``cuda:<local rank>`` under a multi-GPU launch, ``cuda``, or ``cpu``."""
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    return str(partial_state().device)


__all__ = ["MIXED_PRECISION_CHOICES", "cpu_has_native_bf16", "resolve_mixed_precision", "build_accelerator", "process_device", "partial_state"]
