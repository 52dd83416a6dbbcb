"""Build the ``Accelerator`` of a training run.

Every ``allmrec train …`` command runs the same way as ``allmrec …`` (one process) and under
``accelerate launch [--num_processes N] -m allmrec …`` (one process per device, or gloo processes on a
CPU): the launcher sets the environment (``RANK``, ``WORLD_SIZE``, ``ACCELERATE_MIXED_PRECISION`` …) and
``Accelerator()`` reads it. Our ``--mixed-precision auto`` defers to the launcher's choice when it made
one, else picks bf16 (fp16 without bf16 support) on a GPU and fp32 on a CPU.
"""

from __future__ import annotations

import os

from ..errors import AllmrecError

MIXED_PRECISION_CHOICES = ("auto", "no", "bf16", "fp16")


def resolve_mixed_precision(requested: str = "auto") -> str:
    """``auto`` → the launcher's ``--mixed_precision`` if given, else bf16/fp16 on CUDA, ``no`` on CPU.

    An explicit fp16/bf16 on a machine without CUDA falls back to ``no``: CPU autocast would only slow the
    frozen fp32 LLM down (use ``--llm-dtype bfloat16`` for a bf16 LLM on a CPU with AMX instead).
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
            return "no"
        else:
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return requested if cuda else "no"


def build_accelerator(mixed_precision: str = "auto", find_unused_parameters: bool = False):
    """An ``Accelerator`` for one run.

    accelerate keeps one process-wide ``AcceleratorState`` and refuses a second Accelerator with another
    precision ("already been initialized"); running two commands in one Python process (tests, notebooks,
    ``allmrec demo``) would break. The precision-specific part of the state is dropped in that case; the
    process group (``PartialState``) is kept.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import DistributedDataParallelKwargs

    precision = resolve_mixed_precision(mixed_precision)
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


__all__ = ["MIXED_PRECISION_CHOICES", "resolve_mixed_precision", "build_accelerator", "process_device", "partial_state"]
