"""Training samples: the reference seq/pos/neg layout, built with array ops; seeded negatives."""

from __future__ import annotations

import numpy as np
import pytest

from allmrec.cf.samples import (
    InteractionIndex,
    PointwiseTrainingSamples,
    SequenceTrainingSamples,
    last_items_matrix,
    sample_negatives,
)


def _reference_sample(train: list[int], maxlen: int):
    """seq/pos of `sample()` in pmixer/SASRec.pytorch (used by A-LLMRec's pre_train/sasrec),
    transcribed without the random negative."""
    seq = np.zeros(maxlen, dtype=np.int64)
    pos = np.zeros(maxlen, dtype=np.int64)
    nxt = train[-1]
    idx = maxlen - 1
    for i in reversed(train[:-1]):
        seq[idx] = i
        pos[idx] = nxt
        nxt = i
        idx -= 1
        if idx == -1:
            break
    return seq, pos


def _random_sequences(rng, n_users=40, num_items=25):
    return [rng.choice(np.arange(1, num_items + 1), size=int(rng.integers(0, 20)), replace=False) for _ in range(n_users)]


def test_last_items_matrix_matches_a_python_loop():
    rng = np.random.default_rng(0)
    seqs = _random_sequences(rng)
    for width in (1, 5, 30):
        expected = np.zeros((len(seqs), width), dtype=np.int64)
        for r, s in enumerate(seqs):
            s = s[-width:]
            if len(s):
                expected[r, width - len(s):] = s
        np.testing.assert_array_equal(last_items_matrix(seqs, width), expected)
    assert last_items_matrix([], 4).shape == (0, 4)


def test_sequence_samples_match_the_reference_sampler():
    rng = np.random.default_rng(1)
    seqs = _random_sequences(rng)
    users = np.arange(1, len(seqs) + 1)
    samples = SequenceTrainingSamples(seqs, users, num_items=25, maxlen=8, seed=3)
    trainable = [u for u, s in zip(users, seqs) if len(s) >= 2]  # the reference skips len <= 1
    np.testing.assert_array_equal(samples.user_ids, trainable)
    for row, u in enumerate(samples.user_ids):
        seq, pos = _reference_sample(list(seqs[u - 1]), 8)
        np.testing.assert_array_equal(samples.input_ids[row].numpy(), seq)
        np.testing.assert_array_equal(samples.positive_ids[row].numpy(), pos)
        neg = samples.negative_ids[row].numpy()
        assert ((neg == 0) == (pos == 0)).all()  # a negative exactly where there is a target
        assert not np.isin(neg[neg != 0], seqs[u - 1]).any()  # never an item of the user's training set


def test_negatives_are_seeded_per_epoch():
    rng = np.random.default_rng(2)
    seqs = _random_sequences(rng)
    users = np.arange(1, len(seqs) + 1)
    a = SequenceTrainingSamples(seqs, users, num_items=25, maxlen=8, seed=7)
    b = SequenceTrainingSamples(seqs, users, num_items=25, maxlen=8, seed=7)
    a.set_epoch(3)
    b.set_epoch(3)
    assert np.array_equal(a.negative_ids.numpy(), b.negative_ids.numpy())
    first = a.negative_ids.clone()
    a.set_epoch(4)
    assert not np.array_equal(first.numpy(), a.negative_ids.numpy())
    c = SequenceTrainingSamples(seqs, users, num_items=25, maxlen=8, seed=8)
    c.set_epoch(3)
    assert not np.array_equal(c.negative_ids.numpy(), b.negative_ids.numpy())


def test_multiple_negatives_and_batched_fetch():
    seqs = [np.array([1, 2, 3, 4]), np.array([5, 6, 7])]
    s = SequenceTrainingSamples(seqs, np.array([1, 2]), num_items=50, maxlen=4, num_negatives=3)
    batch = s.__getitems__([1, 0])
    assert batch["negative_ids"].shape == (2, 4, 3)
    np.testing.assert_array_equal(batch["input_ids"].numpy(), [[0, 0, 5, 6], [0, 1, 2, 3]])
    assert s[0]["input_ids"].tolist() == [0, 1, 2, 3]


def test_interaction_index_and_rejection_sampling():
    seqs = [np.array([1, 2, 3]), np.array([2, 4])]
    index = InteractionIndex(np.array([1, 2]), seqs, num_items=5)
    assert index.contains(np.array([1, 1, 2, 2]), np.array([3, 4, 4, 3])).tolist() == [True, False, True, False]
    # user 1 may only get items 4 or 5: rejection must find them
    neg = sample_negatives(np.array([[1]]), (1, 500), 5, index, np.random.default_rng(0))
    assert set(np.unique(neg)) == {4, 5}


def test_pointwise_samples_cover_every_interaction():
    seqs = [np.array([1, 2, 3]), np.array([]), np.array([4])]
    s = PointwiseTrainingSamples(seqs, np.array([1, 2, 3]), num_items=10, num_negatives=4, seed=0)
    assert len(s) == 4
    batch = s.__getitems__(list(range(4)))
    assert batch["user_ids"].tolist() == [1, 1, 1, 3]
    assert batch["positive_ids"].tolist() == [1, 2, 3, 4]
    assert batch["negative_ids"].shape == (4, 4)
    for u, negs in zip(batch["user_ids"].tolist(), batch["negative_ids"].numpy()):
        assert not np.isin(negs, seqs[u - 1]).any()


@pytest.mark.parametrize("maxlen", [1, 3])
def test_short_maxlen_still_pairs_inputs_with_next_items(maxlen):
    seqs = [np.array([1, 2, 3, 4, 5])]
    s = SequenceTrainingSamples(seqs, np.array([1]), num_items=9, maxlen=maxlen)
    np.testing.assert_array_equal(s.input_ids[0].numpy(), np.array([1, 2, 3, 4])[-maxlen:])
    np.testing.assert_array_equal(s.positive_ids[0].numpy(), np.array([2, 3, 4, 5])[-maxlen:])
