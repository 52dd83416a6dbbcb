"""The results JSON every evaluator writes, and the compact table printed next to it.

Schema (one object per evaluation run)::

    {
      "model": str,                    checkpoint path or name
      "model_type": str,               config.json model_type (sasrec, allmrec, tallrec, ...)
      "dataset": str,                  prepared dataset name
      "dataset_path": str,
      "split": str,                    test | valid | cold_user_test
      "n_users": int,                  users evaluated (every row of the split)
      "metrics": {"hit@1", "hit@5", "hit@10", "ndcg@10", "mrr", ...extras},
      "intervals": {metric: [low, high]}   95 % bootstrap interval over users of each overall metric
                   (allmrec.evaluation.statistics: 1,000 seeded resamples),
      "scenarios": {"warm": {"n_users", "metrics"}, "mid": {...}, "cold": {...}}
                   (or {"cold_user": {...}} for cold_user_test; metrics null when n_users = 0),
      "candidate_fingerprint": str,    PreparedDataset.candidate_fingerprint(split)
      "rank_rule": str,                how ties were broken
      "command": str,                  the command line that produced the file
      "timings": {stage: seconds},
      "allmrec_version": str,
      "created": str,                  UTC ISO time
      "per_user": {"user_id": [...], "scenario": [...], metric: [...]}   every evaluated user's own values, in row order (when
                   the evaluator passes ``user_ids``): what paired comparisons between models resample
      ...extras                        evaluator-specific (e.g. "mode", "full_ranking")
    }

Evaluators pass **per-user** metric arrays (:func:`build_results` averages them overall and per
scenario), so every number in the file is an average over the same user rows.
"""

from __future__ import annotations

import datetime as _dt
import os
import shlex
import sys
from typing import Any, Mapping, Sequence

import numpy as np

from ..utils.io import atomic_write_json
from .metrics import FULL_RANK_METRICS, RANK_METRICS
from .statistics import metric_intervals

PESSIMISTIC_RULE = "pessimistic: candidates scoring >= the target rank above it (constant scores give Hit@1 = 0)"

#: scenario keys always present for each split (missing ones get n_users 0, metrics null)
SCENARIOS_BY_SPLIT = {"test": ("warm", "mid", "cold"), "valid": ("warm", "mid", "cold"), "cold_user_test": ("cold_user",)}


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values))


def summarize(per_user: Mapping[str, np.ndarray], scenarios: Sequence[str], split: str = "test"
              ) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
    """Average per-user metric arrays overall and per scenario label."""
    labels = np.asarray(list(scenarios), dtype=object)
    n = len(labels)
    for name, values in per_user.items():
        if len(values) != n:
            raise ValueError(f"per-user metric '{name}' has {len(values)} values for {n} users")
    overall = {name: _mean(v) for name, v in per_user.items()} if n else {}
    keys = list(SCENARIOS_BY_SPLIT.get(split, ()))
    keys += sorted(set(labels.tolist()) - set(keys))
    breakdown: dict[str, dict[str, Any]] = {}
    for key in keys:
        mask = labels == key
        m = int(mask.sum())
        breakdown[key] = {
            "n_users": m,
            "metrics": {name: _mean(np.asarray(v)[mask]) for name, v in per_user.items()} if m else None,
        }
    return overall, breakdown


def command_line(argv: Sequence[str] | None = None) -> str:
    """The current command line, shell-quoted (``allmrec evaluate ...``)."""
    argv = list(sys.argv if argv is None else argv)
    if argv and os.path.basename(argv[0]) in ("allmrec", "__main__.py", "-m"):
        argv[0] = "allmrec"
    return " ".join(shlex.quote(a) for a in argv)


def build_results(
    *,
    model: str,
    model_type: str,
    dataset: str,
    split: str,
    per_user: Mapping[str, np.ndarray],
    scenarios: Sequence[str],
    candidate_fingerprint: str,
    command: str | None = None,
    timings: Mapping[str, float] | None = None,
    rank_rule: str = PESSIMISTIC_RULE,
    dataset_path: str | None = None,
    user_ids: Sequence[int] | None = None,
    **extras: Any,
) -> dict[str, Any]:
    """Assemble the results object (see the module docstring)."""
    from .. import __version__

    overall, breakdown = summarize(per_user, scenarios, split)
    results: dict[str, Any] = {
        "model": str(model),
        "model_type": model_type,
        "dataset": dataset,
        "dataset_path": dataset_path,
        "split": split,
        "n_users": len(scenarios),
        "metrics": overall,
        "intervals": metric_intervals(per_user) if len(scenarios) else {},
        "scenarios": breakdown,
        "candidate_fingerprint": candidate_fingerprint,
        "rank_rule": rank_rule,
        "command": command if command is not None else command_line(),
        "timings": dict(timings or {}),
        "allmrec_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if user_ids is not None:
        if len(user_ids) != len(scenarios):
            raise ValueError(f"{len(user_ids)} user ids for {len(scenarios)} evaluated rows")
        results["per_user"] = {"user_id": [int(u) for u in user_ids], "scenario": [str(x) for x in scenarios],
                               **{name: [round(float(x), 6) for x in np.asarray(v)] for name, v in per_user.items()}}
    for key, value in extras.items():
        if key in results:
            raise ValueError(f"extra field '{key}' would overwrite a schema field")
        results[key] = value
    return results


def write_results(path: str | os.PathLike, results: Mapping[str, Any]) -> None:
    atomic_write_json(path, dict(results))


def _metric_columns(results: Mapping[str, Any]) -> list[str]:
    present = list(results.get("metrics") or {})
    ordered = [m for m in RANK_METRICS + FULL_RANK_METRICS if m in present]
    return ordered + [m for m in present if m not in ordered]


def format_table(results: Mapping[str, Any]) -> str:
    """A compact fixed-width table: one row overall, one per scenario."""
    cols = _metric_columns(results)
    header = f"{'':<10}{'users':>7}" + "".join(f"{c:>14}" for c in cols)
    lines = [f"{results.get('model_type', '?')} on {results.get('dataset', '?')} [{results.get('split', '?')}]", header]

    def row(name: str, n: int, metrics: Mapping[str, float] | None) -> str:
        cells = "".join(f"{(metrics or {}).get(c, float('nan')):>14.4f}" if metrics else f"{'-':>14}" for c in cols)
        return f"{name:<10}{n:>7}" + cells

    lines.append(row("overall", int(results.get("n_users", 0)), results.get("metrics")))
    for name, block in (results.get("scenarios") or {}).items():
        lines.append(row(name, int(block.get("n_users", 0)), block.get("metrics")))
    return "\n".join(lines)


__all__ = [
    "PESSIMISTIC_RULE",
    "SCENARIOS_BY_SPLIT",
    "summarize",
    "command_line",
    "build_results",
    "write_results",
    "format_table",
]
