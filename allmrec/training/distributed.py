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


def take_rows(rows: Mapping[str, Any], idx: np.ndarray) -> dict[str, Any]:
    """The rows ``idx`` of a column dict (NumPy arrays or lists)."""
    out = {}
    for k, v in rows.items():
        out[k] = v[idx] if isinstance(v, np.ndarray) else [v[i] for i in idx]
    return out


def process_slice(n: int, index: int, count: int) -> np.ndarray:
    """Row indices of process ``index`` of ``count``: contiguous, sizes differ by at most one."""
    bounds = np.linspace(0, n, count + 1).round().astype(int)
    return np.arange(bounds[index], bounds[index + 1])


def shard_and_gather(fn: Callable[[dict], Any], rows: Mapping[str, Any]):
    """``fn(rows)`` computed in slices across processes; returns what one process would have returned.

    ``fn`` must return a NumPy array (rows first) or a list with one entry per row.
    """
    from accelerate import PartialState

    state = PartialState()
    if state.num_processes == 1:
        return fn(dict(rows))
    n = len(rows["user_id"])
    part = fn(take_rows(rows, process_slice(n, state.process_index, state.num_processes)))
    from accelerate.utils import gather_object

    parts = gather_object([part])  # one entry per process, rank order
    if isinstance(part, np.ndarray):
        parts = [np.asarray(p) for p in parts if len(p)]  # a process with no rows may return a (0,) array
        merged = np.concatenate(parts) if parts else part
    else:
        merged = [x for p in parts for x in p]
    if len(merged) != n:
        raise RuntimeError(f"distributed evaluation gathered {len(merged)} rows for {n} users")
    return merged


def is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


__all__ = ["shard_and_gather", "take_rows", "process_slice", "is_main_process"]
