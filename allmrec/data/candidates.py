"""Seeded evaluation candidate sets: the target + 19 negatives the user never interacted with.

Drawn once at preparation time and stored with the data, so SASRec, A-LLMRec and TALLRec are
scored on *identical* candidates (the authors' code redraws them, unseeded, per model and per run).

Negatives are uniform over the catalogue, excluding every item in the user's **full** history
(train, valid and test). This is stricter than the authors' code, which only excludes the ≤50
items of the truncated input window. A negative whose normalised title equals the target's title
is also rejected (MovieLens lists a few films twice under two ids; such a "negative" would make an
exact-title answer ambiguous).
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError


def _first_occurrence(draw: np.ndarray) -> np.ndarray:
    """Row-wise mask that is False for repeated values after their first occurrence."""
    order = np.argsort(draw, axis=1, kind="stable")
    s = np.take_along_axis(draw, order, axis=1)
    dup_sorted = np.zeros_like(s, dtype=bool)
    dup_sorted[:, 1:] = s[:, 1:] == s[:, :-1]
    dup = np.empty_like(dup_sorted)
    np.put_along_axis(dup, order, dup_sorted, axis=1)
    return ~dup


def sample_negatives(
    rng: np.random.Generator,
    user_ids: np.ndarray,
    targets: np.ndarray,
    history_keys: np.ndarray,
    num_items: int,
    title_group: np.ndarray,
    n_neg: int,
) -> np.ndarray:
    """``(M, n_neg)`` distinct negatives per row, vectorised rejection sampling.

    ``history_keys`` is the sorted array of ``user * (num_items + 1) + item`` over every interaction.
    Rows that do not collect ``n_neg`` valid draws in one round are redrawn whole in the next round
    (with more draws), so the result depends only on the seed.
    """
    m = len(user_ids)
    out = np.zeros((m, n_neg), dtype=np.int64)
    pending = np.arange(m)
    # Most users have seen a tiny part of the catalogue: start just above n_neg draws per row and
    # let the (rare) rows that fall short retry with wider draws.
    width = n_neg + max(4, n_neg // 3)
    rounds = 0
    while pending.size:
        rounds += 1
        if rounds > 50:
            u = int(user_ids[pending[0]])
            raise DataError(
                f"user {u} has fewer than {n_neg} items it never interacted with; lower --num-candidates or "
                "filter such users out"
            )
        draw = rng.integers(1, num_items + 1, size=(pending.size, width), dtype=np.int64)
        keys = user_ids[pending, None] * (num_items + 1) + draw
        pos = np.searchsorted(history_keys, keys)
        seen = history_keys[np.minimum(pos, len(history_keys) - 1)] == keys
        ok = ~seen & (title_group[draw] != title_group[targets[pending]][:, None]) & _first_occurrence(draw)
        csum = np.cumsum(ok, axis=1)
        done = csum[:, -1] >= n_neg
        take = ok & (csum <= n_neg) & done[:, None]
        out[pending[done]] = draw[take].reshape(-1, n_neg)
        pending = pending[~done]
        width = min(width * 2, 4096)
    return out


def assemble_candidates(rng: np.random.Generator, targets: np.ndarray, negatives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Insert each target at a uniform random position → (candidates (M, n_neg+1), target_index (M,))."""
    m, n_neg = negatives.shape
    c = n_neg + 1
    target_index = rng.integers(0, c, size=m, dtype=np.int64)
    idx = np.arange(c)[None, :]
    neg_pos = np.clip(idx - (idx > target_index[:, None]), 0, max(n_neg - 1, 0))
    cands = np.where(idx == target_index[:, None], targets[:, None], np.take_along_axis(negatives, neg_pos, axis=1) if n_neg else 0)
    return cands.astype(np.int64), target_index


__all__ = ["sample_negatives", "assemble_candidates"]
