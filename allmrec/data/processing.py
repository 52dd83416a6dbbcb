"""Interaction filtering, k-core, ordering, id assignment and leave-one-out split (vectorised).

All steps work on NumPy arrays of integer codes (users/items factorised once), so a
Movies-and-TV-sized file (3.4 M interactions) is processed in seconds, not minutes.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError


def rating_filter(rating: np.ndarray, threshold: float | None) -> np.ndarray:
    """Mask of interactions kept as positives: ``rating > threshold`` (paper: Beauty/Toys use > 3).

    Unlike the authors' script (which applies its cut only while counting), the mask is applied to
    the interactions themselves. Missing ratings (NaN) are dropped when a threshold is set.
    """
    if threshold is None:
        return np.ones(len(rating), dtype=bool)
    return np.nan_to_num(rating, nan=-np.inf) > threshold


def duplicate_mask(user: np.ndarray, item: np.ndarray, ts: np.ndarray, policy: str) -> np.ndarray:
    """Which (user, item) repeats to keep: ``keep`` all, ``first`` (earliest) or ``last`` (latest).

    Order among equal timestamps is file order (arrays are in file order on entry).
    """
    if policy == "keep":
        return np.ones(len(user), dtype=bool)
    n = len(user)
    # one int64 key per (user, item); lexsort is stable, so equal times keep file order
    key = user.astype(np.int64) * (int(item.max(initial=0)) + 1) + item
    order = np.lexsort((ts, key))
    k = key[order]
    same_as_prev = np.zeros(n, dtype=bool)
    same_as_prev[1:] = k[1:] == k[:-1]
    if policy == "first":
        keep_sorted = ~same_as_prev
    elif policy == "last":
        keep_sorted = np.ones(n, dtype=bool)
        keep_sorted[:-1] = ~same_as_prev[1:]
    else:
        raise DataError(f"unknown duplicate policy '{policy}' (choose keep, first or last)")
    keep = np.empty(n, dtype=bool)
    keep[order] = keep_sorted
    return keep


def kcore_mask(user: np.ndarray, item: np.ndarray, k: int, mode: str = "iterative") -> tuple[np.ndarray, int]:
    """Mask of interactions surviving the k-core filter; returns (mask, iterations).

    ``iterative`` repeats "drop users and items with fewer than k interactions" until nothing
    changes, so every kept user and item has ≥ k interactions (a true k-core). ``single-pass``
    counts once over the input and keeps an interaction iff both counts are ≥ k, which is what
    the authors' script does (users/items can end up with fewer than k).
    """
    if k <= 1:
        return np.ones(len(user), dtype=bool), 0
    if mode not in ("iterative", "single-pass"):
        raise DataError(f"unknown k-core mode '{mode}' (choose iterative or single-pass)")
    nu, ni = int(user.max(initial=-1)) + 1, int(item.max(initial=-1)) + 1
    mask = np.ones(len(user), dtype=bool)
    it = 0
    while True:
        it += 1
        cu = np.bincount(user[mask], minlength=nu)
        ci = np.bincount(item[mask], minlength=ni)
        new = mask & (cu[user] >= k) & (ci[item] >= k)
        if mode == "single-pass" or new.sum() == mask.sum():
            return new, it
        mask = new


def first_appearance_ids(codes: np.ndarray) -> np.ndarray:
    """Relabel integer codes to 1..N in order of first appearance (file order)."""
    uniq, first = np.unique(codes, return_index=True)
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(1, len(uniq) + 1)
    lut = np.zeros(int(codes.max(initial=-1)) + 1, dtype=np.int64)
    lut[uniq] = rank
    return lut[codes]


def sort_by_user_time(user: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Permutation sorting by (user, timestamp); ties keep file order (stable)."""
    ts = np.asarray(ts, dtype=np.int64)
    t0, span = int(ts.min(initial=0)), int(ts.max(initial=0)) - int(ts.min(initial=0)) + 1
    if int(user.max(initial=0)) + 1 < (2**62) // max(span, 1):
        # one int64 key and one stable argsort is ~2x faster than lexsort on two keys
        return np.argsort(user.astype(np.int64) * span + (ts - t0), kind="stable")
    return np.lexsort((ts, user))  # lexsort is stable: equal keys keep their input order


def sequences(user_sorted: np.ndarray, num_users: int) -> np.ndarray:
    """CSR offsets (num_users + 1) of per-user runs in a (user, time)-sorted array with ids 1..U."""
    counts = np.bincount(user_sorted, minlength=num_users + 1)[1:]
    return np.concatenate([[0], np.cumsum(counts)])


def popularity_labels(train_count: np.ndarray, warm_frac: float, cold_frac: float) -> np.ndarray:
    """Label items warm (top ``warm_frac`` by training count), cold (bottom ``cold_frac``) or mid.

    Items are ranked by count (desc), ties by item id, so the labels are deterministic; the paper
    (§5.2.2) defines warm/cold as top/bottom 35 % "of interactions".
    """
    n = len(train_count)
    order = np.lexsort((np.arange(n), -train_count))
    labels = np.full(n, "mid", dtype=object)
    n_warm, n_cold = int(round(warm_frac * n)), int(round(cold_frac * n))
    labels[order[:n_warm]] = "warm"
    if n_cold:
        labels[order[n - n_cold:]] = "cold"
    return labels


__all__ = [
    "rating_filter", "duplicate_mask", "kcore_mask", "first_appearance_ids", "sort_by_user_time", "sequences",
    "popularity_labels",
]
