"""Distributed evaluation: users sharded across processes, gathered back once, in order.

Under ``accelerate launch --num_processes N … evaluate`` each process scores one contiguous slice of the
evaluation rows and ``gather_object`` brings the slices back to every process in rank order. The slices
partition the rows exactly (no padding, no duplicates: unlike an even-split DataLoader there is nothing
for ``gather_for_metrics`` to drop), so the concatenation is row-for-row the single-process result and
the metrics are identical. With one process this is a plain function call.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from ..evaluation.subsets import take_rows


def process_slice(n: int, index: int, count: int, align: int = 1) -> np.ndarray:
    """Row indices of process ``index`` of ``count``: contiguous, made of whole blocks of ``align`` rows.

    With ``align`` = the scoring batch size every batch a process forms is a batch the single process
    forms too (same users, same padding), so scores are bit-identical, not merely close.
    """
    blocks = -(-n // align)
    bounds = np.linspace(0, blocks, count + 1).round().astype(int) * align
    return np.arange(min(bounds[index], n), min(bounds[index + 1], n))


def shard_and_gather(fn: Callable[[dict], Any], rows: Mapping[str, Any], align: int = 1):
    """``fn(rows)`` computed in slices across processes; returns what one process would have returned.

    ``fn`` must return a NumPy array (rows first), a list with one entry per row, or a tuple of those (or
    None); ``align`` is the batch size ``fn`` uses (see :func:`process_slice`).
    """
    from .accelerator import partial_state

    state = partial_state()
    if state.num_processes == 1:
        return fn(dict(rows))
    n = len(rows["user_id"])
    part = fn(take_rows(rows, process_slice(n, state.process_index, state.num_processes, align)))
    from accelerate.utils import gather_object

    parts = gather_object([part])  # one entry per process, rank order
    merged = _merge(parts)
    first = merged[0] if isinstance(merged, tuple) else merged
    if len(first) != n:
        raise RuntimeError(f"distributed evaluation gathered {len(first)} rows for {n} users")
    return merged


def _merge(parts: list):
    """Concatenate per-process results: arrays (rows first), lists, tuples of those, or None."""
    if isinstance(parts[0], tuple):
        return tuple(_merge([p[i] for p in parts]) for i in range(len(parts[0])))
    if parts[0] is None:
        return None
    if isinstance(parts[0], np.ndarray):
        arrays = [np.asarray(p) for p in parts if len(p)]  # a process with no rows may return a (0,) array
        return np.concatenate(arrays) if arrays else parts[0]
    return [x for p in parts for x in p]


def is_main_process() -> bool:
    from .accelerator import partial_state

    return partial_state().is_main_process


__all__ = ["shard_and_gather", "take_rows", "process_slice", "is_main_process"]
