"""Metrics against hand-computed cases: pessimistic ties, target at every position, full ranking."""

from __future__ import annotations

import math

import numpy as np
import pytest

from allmrec.evaluation.metrics import (
    full_ranking_ranks,
    per_user_rank_metrics,
    rank_metrics,
    ranks_from_scores,
)


def test_constant_scores_rank_the_target_last():
    scores = np.zeros((3, 20))
    ranks = ranks_from_scores(scores, [0, 7, 19])
    assert ranks.tolist() == [19, 19, 19]
    m = rank_metrics(ranks)
    assert m["hit@1"] == 0.0 and m["hit@5"] == 0.0 and m["hit@10"] == 0.0 and m["ndcg@10"] == 0.0
    assert m["mrr"] == pytest.approx(1 / 20)


def test_partial_ties_count_against_the_target():
    # target (col 2) = 0.5 ties with col 0; col 1 is higher; col 3 lower
    scores = np.array([[0.5, 0.9, 0.5, 0.1]])
    assert ranks_from_scores(scores, [2]).tolist() == [2]
    # a unique maximum ranks first
    assert ranks_from_scores(np.array([[0.1, 0.2, 0.3]]), [2]).tolist() == [0]


@pytest.mark.parametrize("position", range(20))
def test_target_at_every_position(position):
    # candidates scored 19, 18, ..., 0; the target sits at `position` → rank = position
    scores = np.arange(19, -1, -1, dtype=float)[None, :]
    ranks = ranks_from_scores(scores, [position])
    assert ranks.tolist() == [position]
    m = {k: float(v[0]) for k, v in per_user_rank_metrics(ranks).items()}
    assert m["hit@1"] == float(position < 1)
    assert m["hit@5"] == float(position < 5)
    assert m["hit@10"] == float(position < 10)
    assert m["ndcg@10"] == pytest.approx(1 / math.log2(position + 2) if position < 10 else 0.0)
    assert m["mrr"] == pytest.approx(1 / (position + 1))


def test_means_over_users_by_hand():
    # ranks 0, 1, 4, 12 → hit@1 1/4, hit@5 3/4, hit@10 3/4, ndcg@10 (1 + 1/log2 3 + 1/log2 6 + 0)/4
    scores = np.array([
        [9, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],   # target col 0 best → 0
        [9, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],   # target col 1 → 1
        [9, 8, 7, 6, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],   # target col 4 → 4
        [9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 5, 1, 1, 1, 1, 1, 1, 1],   # target col 12 → 12
    ], dtype=float)
    ranks = ranks_from_scores(scores, [0, 1, 4, 12])
    assert ranks.tolist() == [0, 1, 4, 12]
    m = rank_metrics(ranks)
    assert m["hit@1"] == pytest.approx(0.25)
    assert m["hit@5"] == pytest.approx(0.75)
    assert m["hit@10"] == pytest.approx(0.75)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(6)) / 4)
    assert m["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 13) / 4)


def test_nan_scores_never_help_the_target():
    scores = np.array([[np.nan, 0.1, 0.2], [0.3, np.nan, np.nan]])
    assert ranks_from_scores(scores, [0, 1]).tolist() == [2, 2]


def test_torch_scores_are_accepted():
    torch = pytest.importorskip("torch")
    assert ranks_from_scores(torch.tensor([[0.1, 0.9]]), [1]).tolist() == [0]


def test_users_without_rows_are_not_averaged():
    # An empty split has no mean: callers must not report 0 for "no users".
    with pytest.raises(ValueError):
        rank_metrics(np.zeros(0, dtype=np.int64))
    assert ranks_from_scores(np.zeros((0, 20)), np.zeros(0, dtype=np.int64)).shape == (0,)


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        ranks_from_scores(np.zeros(5), [0])
    with pytest.raises(ValueError):
        ranks_from_scores(np.zeros((2, 5)), [0])
    with pytest.raises(ValueError):
        ranks_from_scores(np.zeros((1, 5)), [5])


def test_full_ranking_excludes_history_and_padding():
    # 6 items (ids 1..6), column 0 = padding. Scores by id: 0:99, 1:10, 2:9, 3:8, 4:7, 5:6, 6:5
    all_scores = np.array([[99, 10, 9, 8, 7, 6, 5]] * 3, dtype=float)
    targets = np.array([4, 4, 2])
    histories = [np.array([], dtype=np.int64), np.array([1, 3]), np.array([2, 1])]
    ranks = full_ranking_ranks(all_scores, targets, histories)
    # user 0: items 1,2,3 above item 4 → 3 (padding's 99 never counts)
    # user 1: items 1 and 3 are history → only item 2 above → 1
    # user 2: target 2 is in the history but stays rankable; item 1 excluded → 0
    assert ranks.tolist() == [3, 1, 0]


def test_full_ranking_ties_are_pessimistic():
    all_scores = np.zeros((1, 11))
    assert full_ranking_ranks(all_scores, np.array([5]), [np.array([1, 2])]).tolist() == [7]  # 10 items - 2 history - itself
