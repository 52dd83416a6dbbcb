"""Evaluate a CF backbone (SASRec, GRU4Rec, NextItNet, NCF) on a prepared split.

The model scores exactly the stored candidates of each row (``PreparedDataset.eval_rows``); no
candidate is ever drawn here. Histories are the stored ``history`` column (for ``test``: train +
valid), truncated to the model's ``maxlen``. Optionally every row is also ranked against the
whole catalogue (history excluded) for full-ranking HR@10 / NDCG@10.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import DataError
from ..utils.logging import get_logger
from .metrics import (
    full_ranking_ranks,
    per_user_full_rank_metrics,
    per_user_rank_metrics,
    ranks_from_scores,
)
from .results import build_results

logger = get_logger(__name__)


def score_rows(
    model,
    rows: Mapping[str, Any],
    batch_size: int = 256,
    full_ranking: bool = False,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Score the stored candidates of every row.

    Returns ``(candidate_scores (N, C), full_ranks (N,) or None)``. The model is switched to
    ``eval()`` for the duration and restored afterwards.
    """
    import torch
    from tqdm.auto import tqdm

    from ..cf.samples import last_items_matrix

    n = len(rows["user_id"])
    cands = np.asarray(rows["candidates"], dtype=np.int64)
    histories = rows["history"]
    # cf_history / cf_user_id: what the model reads, another user's under --ablate shuffle-users
    seqs = last_items_matrix(rows.get("cf_history", histories), int(model.config.maxlen))
    user_ids = np.asarray(rows.get("cf_user_id", rows["user_id"]), dtype=np.int64)
    targets = np.asarray(rows["target"], dtype=np.int64)
    scores = np.zeros(cands.shape, dtype=np.float32)
    full_ranks = np.zeros(n, dtype=np.int64) if full_ranking else None
    was_training = model.training
    model.eval()
    device = model.device
    try:
        with torch.inference_mode():
            starts = range(0, n, batch_size)
            for start in tqdm(starts, desc="scoring", unit="batch", disable=not progress or n <= batch_size, leave=False):
                sl = slice(start, min(start + batch_size, n))
                seq = torch.from_numpy(seqs[sl]).to(device)
                uid = torch.from_numpy(user_ids[sl]).to(device)
                scores[sl] = model.score(seq, torch.from_numpy(cands[sl]).to(device), uid).float().cpu().numpy()
                if full_ranking:
                    all_scores = model.score_all_items(seq, uid).float().cpu().numpy()
                    full_ranks[sl] = full_ranking_ranks(all_scores, targets[sl], histories[sl])
    finally:
        model.train(was_training)
    return scores, full_ranks


def candidate_ranks(model, rows: Mapping[str, Any], batch_size: int = 256, progress: bool = False) -> np.ndarray:
    """Pessimistic ranks of the targets among the stored candidates."""
    scores, _ = score_rows(model, rows, batch_size=batch_size, full_ranking=False, progress=progress)
    return ranks_from_scores(scores, rows["target_index"])


def check_rows(rows: Mapping[str, Any], path: str, split: str) -> None:
    """The stored candidates must contain the target at ``target_index``; stop otherwise."""
    cands = np.asarray(rows["candidates"])
    if len(cands) == 0:
        raise DataError(f"split '{split}' of {path} has no rows to evaluate (e.g. ml-100k has no cold users)")
    ti = np.asarray(rows["target_index"])
    if (cands[np.arange(len(cands)), ti] != np.asarray(rows["target"])).any():
        raise DataError(f"{path}: split '{split}' has rows whose candidates[target_index] != target; re-run `allmrec data prepare`")


def evaluate_cf_model(
    model,
    dataset,
    split: str = "test",
    batch_size: int = 256,
    full_ranking: bool = True,
    model_name: str | None = None,
    command: str | None = None,
    timings: dict[str, float] | None = None,
    progress: bool = True,
    max_users: int | None = None,
    subset_seed: int = 0,
    ablate: str | None = None,
) -> dict[str, Any]:
    """Evaluate a loaded CF model on ``dataset`` (a :class:`~allmrec.data.dataset.PreparedDataset`)
    → results dict (schema in :mod:`allmrec.evaluation.results`). ``max_users`` scores the seeded
    subset of :func:`allmrec.evaluation.subsets.subset_rows` (the same users as every other model).
    ``ablate="shuffle-users"`` scores each user's candidates from another evaluated user's history (the
    permutation A-LLMRec's ablation uses; full ranking is skipped, its history mask belongs to the real user);
    ``ablate="shuffle-history"`` scores every user from their own history in a seeded random order."""
    from .subsets import shuffle_history_rows, shuffle_user_rows, subset_rows

    timings = dict(timings or {})
    all_rows = dataset.eval_rows(split)
    check_rows(all_rows, str(dataset.path), split)
    rows = subset_rows(all_rows, max_users, subset_seed)
    if ablate == "shuffle-history":
        rows = shuffle_history_rows(rows, subset_seed)  # the same items: full ranking's history mask still holds
    elif ablate is not None:
        if ablate != "shuffle-users":
            raise DataError(f"--ablate {ablate} needs item soft tokens (A-LLMRec / MLP-LLM); CF models take "
                            "shuffle-users or shuffle-history")
        rows = shuffle_user_rows(rows, subset_seed)
        full_ranking = False
    start = time.perf_counter()
    from ..training.distributed import is_main_process, shard_and_gather

    # users sharded over processes under `accelerate launch` (whole batches each), gathered back in order
    scores, full_ranks = shard_and_gather(
        lambda part: score_rows(model, part, batch_size=batch_size, full_ranking=full_ranking,
                                progress=progress and is_main_process()),
        rows, align=batch_size)
    timings["scoring"] = round(time.perf_counter() - start, 3)
    ranks = ranks_from_scores(scores, rows["target_index"])
    per_user = per_user_rank_metrics(ranks)
    if full_ranks is not None:
        per_user.update(per_user_full_rank_metrics(full_ranks))
    return build_results(
        model=model_name or getattr(model, "name_or_path", type(model).__name__),
        model_type=model.config.model_type,
        dataset=dataset.name,
        dataset_path=str(dataset.path),
        split=split,
        per_user=per_user,
        scenarios=rows["scenario"],
        user_ids=rows["user_id"],
        candidate_fingerprint=dataset.candidate_fingerprint(split),
        command=command,
        timings=timings,
        mode="rank",
        full_ranking=bool(full_ranking),
        num_candidates=int(np.asarray(rows["candidates"]).shape[1]),
        maxlen=int(model.config.maxlen),
        loss_type=getattr(model.config, "loss_type", None),
        users_in_split=len(all_rows["user_id"]),
        user_subset={"max_users": max_users, "seed": subset_seed} if len(rows["user_id"]) < len(all_rows["user_id"]) else None,
        **({"ablation": {"kind": ablate, "seed": subset_seed}} if ablate else {}),
    )


def evaluate_cf_checkpoint(args) -> dict[str, Any]:
    """CLI entry: ``args.model`` (a CF checkpoint dir, or ``pop`` for MostPop), ``args.data``, ``args.split``,
    ``args.batch_size``, ``args.full_ranking``, ``args.ablate``."""
    from ..cf.loading import load_cf_model
    from ..cf.popularity import POPULARITY_MODEL, MostPopular
    from ..data.dataset import PreparedDataset

    timings: dict[str, float] = {}
    start = time.perf_counter()
    dataset = PreparedDataset.load(args.data)
    from ..training.accelerator import process_device

    if str(args.model) == POPULARITY_MODEL:
        model = MostPopular(dataset.item_popularity)
    else:
        model = load_cf_model(args.model).to(process_device())
    num_items = int(model.config.num_items)
    if num_items != dataset.num_items:
        raise DataError(
            f"{args.model} was trained on {num_items} items but {args.data} has {dataset.num_items}; "
            "evaluate on the dataset it was trained on"
        )
    timings["load"] = round(time.perf_counter() - start, 3)
    return evaluate_cf_model(
        model,
        dataset,
        split=args.split,
        batch_size=args.batch_size,
        full_ranking=getattr(args, "full_ranking", True),
        model_name=str(Path(args.model)),
        command=getattr(args, "command", None),
        timings=timings,
        max_users=getattr(args, "max_users", None),
        subset_seed=getattr(args, "subset_seed", 0),
        ablate=getattr(args, "ablate", None),
    )


__all__ = ["score_rows", "candidate_ranks", "check_rows", "evaluate_cf_model", "evaluate_cf_checkpoint"]
