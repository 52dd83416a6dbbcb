"""Evaluation shared by every model: rank metrics on the stored candidate sets (pessimistic ties),
full-ranking metrics, the results JSON schema, and the CF evaluator.

Importing this package is cheap (NumPy only); torch is imported when a model is scored.
"""

from .cf_evaluator import candidate_ranks, evaluate_cf_checkpoint, evaluate_cf_model, score_rows
from .metrics import (
    FULL_RANK_METRICS,
    RANK_METRICS,
    full_ranking_ranks,
    hit_at_k,
    ndcg_at_k,
    per_user_full_rank_metrics,
    per_user_rank_metrics,
    rank_metrics,
    ranks_from_scores,
    reciprocal_rank,
)
from .results import SCENARIOS_BY_SPLIT, build_results, command_line, format_table, summarize, write_results

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
    "SCENARIOS_BY_SPLIT",
    "summarize",
    "build_results",
    "write_results",
    "format_table",
    "command_line",
    "score_rows",
    "candidate_ranks",
    "evaluate_cf_model",
    "evaluate_cf_checkpoint",
]
