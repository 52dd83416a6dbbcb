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


def derangement(n: int, seed: int) -> np.ndarray:
    """A seeded permutation of ``range(n)`` with no fixed point (n >= 2): a random cycle."""
    order = np.random.default_rng(seed).permutation(n)
    perm = np.empty(n, dtype=np.int64)
    perm[order] = np.roll(order, -1)
    return perm


def shuffle_user_rows(rows: Mapping[str, Any], seed: int = 0) -> dict[str, Any]:
    """``--ablate shuffle-users``: rows whose ``cf_history`` / ``cf_user_id`` (what a CF model reads) are another
    evaluated user's (a seeded derangement over all evaluated rows); targets, candidates and prompts stay. The same
    permutation for every model, so A-LLMRec's and SASRec's shuffled-user numbers are on the same pairs."""
    from ..errors import AllmrecError

    n = len(rows["user_id"])
    if n < 2:
        raise AllmrecError("--ablate shuffle-users needs at least 2 evaluated users")
    perm = derangement(n, seed)
    out = dict(rows)
    out["cf_history"] = [rows["history"][int(j)] for j in perm]
    out["cf_user_id"] = np.asarray(rows["user_id"])[perm]
    return out


def shuffle_history_rows(rows: Mapping[str, Any], seed: int = 0) -> dict[str, Any]:
    """``--ablate shuffle-history``: every user's history (what the prompt shows and what a CF model reads) in a
    seeded random order; targets and candidates stay. The permutation of a user depends only on (seed, user id), so
    SASRec and A-LLMRec read the same shuffled sequence. The whole history is permuted (a prompt showing the last
    10 items may then show other items of the same history): a model that ignores order scores the same."""
    if "cf_history" in rows:
        raise ValueError("shuffle_history_rows: the rows already carry another ablation")
    out = dict(rows)
    shuffled = []
    for uid, hist in zip(np.asarray(rows["user_id"]), rows["history"]):
        h = np.asarray(hist)
        shuffled.append(h[np.random.default_rng((int(seed), int(uid))).permutation(len(h))])
    out["history"] = shuffled
    return out


__all__ = ["subset_rows", "take_rows", "derangement", "shuffle_user_rows", "shuffle_history_rows"]
