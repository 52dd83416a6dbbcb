"""Uncertainty of per-user averages: seeded percentile bootstrap over users.

One Hit@1 on a few hundred users is not exact: on 943 users a Hit@1 near 0.4 has a standard error of about 0.016,
and the paper's margins are 0.01-0.05. Every results file therefore carries a 95 % interval per overall metric
(:func:`bootstrap_interval`, 1,000 resamples of the evaluated users, seed 0), and :func:`paired_difference`
gives the interval of "model A minus model B" on the *same* users (resampling users, not models, so the shared
difficulty of each user cancels).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

N_RESAMPLES = 1000
CONFIDENCE = 0.95


def _resample_indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    # its own seeded generator (= default_rng(seed)): the intervals never touch the candidates or global RNG state
    return np.random.Generator(np.random.PCG64(seed)).integers(0, n, size=(n_resamples, n))


def bootstrap_interval(values: Sequence[float], n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``mean(values)`` → ``(low, high)``; ``(nan, nan)`` without values."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    means = v[_resample_indices(v.size, n_resamples, seed)].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))


def paired_difference(a: Sequence[float], b: Sequence[float], n_resamples: int = N_RESAMPLES,
                      confidence: float = CONFIDENCE, seed: int = 0) -> dict[str, float]:
    """``mean(a) - mean(b)`` over the same users with its paired-bootstrap interval."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same users: {a.shape} vs {b.shape}")
    low, high = bootstrap_interval(a - b, n_resamples, confidence, seed)
    return {"difference": float(np.mean(a - b)) if a.size else float("nan"), "low": low, "high": high}


def paired_results_difference(a: Mapping, b: Mapping, metric: str = "hit@1", seed: int = 0) -> dict[str, float]:
    """``a - b`` on ``metric`` over the users both results files scored (their ``per_user`` arrays, matched by
    user id) with its paired-bootstrap interval → ``{"difference", "low", "high", "n_users"}``.

    Both files must come from the same stored candidates (``candidate_fingerprint``): a paired comparison of
    different candidate sets would look exact and mean nothing."""
    for r in (a, b):
        if "per_user" not in r:
            raise ValueError(f"{r.get('model', 'a results file')} has no per-user values (re-evaluate with this version)")
    if a.get("candidate_fingerprint") != b.get("candidate_fingerprint"):
        raise ValueError(f"{a.get('model')} and {b.get('model')} were scored on different candidates")
    ua, ub = a["per_user"]["user_id"], b["per_user"]["user_id"]
    index_b = {int(u): k for k, u in enumerate(ub)}
    shared = [(k, index_b[int(u)]) for k, u in enumerate(ua) if int(u) in index_b]
    if not shared:
        raise ValueError(f"{a.get('model')} and {b.get('model')} share no evaluated user")
    va = np.asarray(a["per_user"][metric], dtype=np.float64)[[k for k, _ in shared]]
    vb = np.asarray(b["per_user"][metric], dtype=np.float64)[[j for _, j in shared]]
    return {**paired_difference(va, vb, seed=seed), "n_users": len(shared)}


def metric_intervals(per_user: Mapping[str, Sequence[float]], seed: int = 0) -> dict[str, list[float]]:
    """``{metric: [low, high]}`` for every per-user metric array (the results file's ``intervals``)."""
    return {name: list(bootstrap_interval(v, seed=seed)) for name, v in per_user.items()}


__all__ = ["N_RESAMPLES", "CONFIDENCE", "bootstrap_interval", "paired_difference", "paired_results_difference",
           "metric_intervals"]
