"""Ranking metrics on the stored candidate sets, and full-ranking metrics over the catalogue.

Rank rule (PESSIMISTIC ties)
----------------------------
The 0-based rank of the target is the number of *other* candidates whose score is **greater
than or equal to** the target's::

    rank = #{j ≠ target : s_j > s_t} + #{j ≠ target : s_j = s_t}

so a tie always counts against the target. A model that outputs a constant therefore gets
rank C-1 (Hit@1 = 0), not a lucky 1/C, and a model cannot gain from degenerate scores. NaN scores
are treated as -inf, so a NaN target ties with (and loses to) every other NaN/-inf candidate.

From ranks (per user, then averaged over users)::

    Hit@k   = 1[rank < k]
    NDCG@k  = 1[rank < k] / log2(rank + 2)        (one relevant item, so IDCG = 1)
    MRR     = 1 / (rank + 1)

Full ranking (Krichene & Rendle, KDD'20): the target is ranked against **every** item in the
catalogue instead of 19 sampled negatives; the padding id 0 and the items in the user's history
are excluded (set to -inf), except the target itself if it re-occurs in the history. Same tie
rule. Reported as ``full_hr@10`` and ``full_ndcg@10``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: the candidate-set metrics every evaluator reports, in table order
RANK_METRICS = ("hit@1", "hit@5", "hit@10", "ndcg@10", "mrr")
FULL_RANK_METRICS = ("full_hr@10", "full_ndcg@10")


def _as_float(scores) -> np.ndarray:
    if hasattr(scores, "detach"):  # torch tensor
        scores = scores.detach().float().cpu().numpy()
    scores = np.asarray(scores, dtype=np.float64)
    return np.where(np.isnan(scores), -np.inf, scores)


def ranks_from_scores(scores, target_index) -> np.ndarray:
    """``scores`` ``(N, C)`` and the target's column ``(N,)`` → pessimistic 0-based ranks ``(N,)``."""
    s = _as_float(scores)
    if s.ndim != 2:
        raise ValueError(f"scores must be (N, C), got shape {s.shape}")
    t = np.asarray(target_index, dtype=np.int64)
    if t.shape != (s.shape[0],):
        raise ValueError(f"target_index must be ({s.shape[0]},), got {t.shape}")
    if s.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    if t.min() < 0 or t.max() >= s.shape[1]:
        raise ValueError("target_index out of range of the candidate columns")
    target = s[np.arange(len(t)), t][:, None]
    # ≥ counts the target itself once; subtract it.
    return (s >= target).sum(axis=1).astype(np.int64) - 1


def hit_at_k(ranks: np.ndarray, k: int) -> np.ndarray:
    return (np.asarray(ranks) < k).astype(np.float64)


def ndcg_at_k(ranks: np.ndarray, k: int) -> np.ndarray:
    r = np.asarray(ranks, dtype=np.float64)
    return np.where(r < k, 1.0 / np.log2(r + 2.0), 0.0)


def reciprocal_rank(ranks: np.ndarray) -> np.ndarray:
    return 1.0 / (np.asarray(ranks, dtype=np.float64) + 1.0)


def per_user_rank_metrics(ranks: np.ndarray) -> dict[str, np.ndarray]:
    """Per-user values of :data:`RANK_METRICS` from candidate ranks (average them for the table)."""
    return {
        "hit@1": hit_at_k(ranks, 1),
        "hit@5": hit_at_k(ranks, 5),
        "hit@10": hit_at_k(ranks, 10),
        "ndcg@10": ndcg_at_k(ranks, 10),
        "mrr": reciprocal_rank(ranks),
    }


def per_user_full_rank_metrics(full_ranks: np.ndarray) -> dict[str, np.ndarray]:
    return {"full_hr@10": hit_at_k(full_ranks, 10), "full_ndcg@10": ndcg_at_k(full_ranks, 10)}


def rank_metrics(ranks: np.ndarray) -> dict[str, float]:
    """Mean of :func:`per_user_rank_metrics`; raises on an empty input (there is no mean)."""
    if len(ranks) == 0:
        raise ValueError("no users to average over")
    return {k: float(v.mean()) for k, v in per_user_rank_metrics(ranks).items()}


def full_ranking_ranks(all_scores, targets, histories: Sequence[np.ndarray]) -> np.ndarray:
    """Pessimistic 0-based rank of each target among all items.

    ``all_scores`` ``(B, num_items + 1)`` (column = item id), ``targets`` ``(B,)``, ``histories``
    the items each user already interacted with (any lengths). Column 0 and history items are
    excluded; the target stays rankable even if it is in the history.
    """
    s = _as_float(all_scores).copy()
    t = np.asarray(targets, dtype=np.int64)
    b = s.shape[0]
    if b == 0:
        return np.zeros(0, dtype=np.int64)
    rows = np.arange(b)
    target_score = s[rows, t].copy()
    s[:, 0] = -np.inf
    if len(histories):
        lengths = np.fromiter((len(h) for h in histories), dtype=np.int64, count=b)
        if lengths.sum():
            flat = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories])
            s[np.repeat(rows, lengths), flat] = -np.inf
    s[rows, t] = target_score
    return (s >= target_score[:, None]).sum(axis=1).astype(np.int64) - 1


__all__ = [
    "RANK_METRICS",
    "FULL_RANK_METRICS",
    "ranks_from_scores",
    "hit_at_k",
    "ndcg_at_k",
    "reciprocal_rank",
    "per_user_rank_metrics",
    "per_user_full_rank_metrics",
    "rank_metrics",
    "full_ranking_ranks",
]
