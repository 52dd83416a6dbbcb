"""Seeded user subsets of an evaluation split, identical for every model.

``allmrec evaluate --max-users N`` scores the same N users whatever the model (CF, A-LLMRec, TALLRec,
LLM-Only), because the subset depends only on the split's row count, N and the seed.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np


def take_rows(rows: Mapping[str, Any], idx) -> dict[str, Any]:
    """The rows ``idx`` of a column dict (NumPy arrays or lists), in ``idx`` order."""
    return {k: (v[idx] if isinstance(v, np.ndarray) else [v[i] for i in idx]) for k, v in rows.items()}


def subset_rows(rows: Mapping[str, Any], max_users: int | None, seed: int = 0) -> dict[str, Any]:
    """A seeded random subset of ``max_users`` rows (kept in split order), or all rows."""
    n = len(rows["user_id"])
    if not max_users or max_users >= n:
        return dict(rows)
    keep = np.sort(np.random.default_rng(seed).choice(n, size=int(max_users), replace=False))
    return take_rows(rows, keep)


__all__ = ["subset_rows", "take_rows"]
