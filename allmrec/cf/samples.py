"""Training samples for the CF backbones, built with array ops (no per-sample Python).

Sequential models (SASRec, GRU4Rec, NextItNet) — exactly the reference ``WarpSampler``/
``SeqDataset`` layout: for a user with training items ``i_1..i_n`` (n ≥ 2) and ``maxlen`` L,

    seq = [0 … 0, i_{n-L} … i_{n-1}]      (the last L items before the last one, left-padded)
    pos = [0 … 0, i_{n-L+1} … i_n]        (the next item at each position)
    neg = a uniform item ∉ the user's training set wherever pos ≠ 0, else 0

Users with fewer than 2 training items have no (input, target) pair and are skipped, as in the
reference code. Each epoch visits every remaining user once in a shuffled order (the reference
samples users with replacement, ``len(users) // batch`` batches per epoch: the same number of
samples in expectation). Negatives are redrawn at the start of every epoch from a generator
seeded with ``(seed, epoch)``.

NCF — every training interaction (user, item) is one sample with ``num_negatives`` negatives.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..utils.logging import get_logger

logger = get_logger(__name__)


def last_items_matrix(seqs: Sequence[np.ndarray], width: int) -> np.ndarray:
    """``(len(seqs), width)`` int64: the last ``width`` items of each sequence, left-padded with 0.

    Vectorised: one concatenation and one gather, whatever the number of sequences.
    """
    n = len(seqs)
    out = np.zeros((n, width), dtype=np.int64)
    if n == 0 or width == 0:
        return out
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=n)
    if lengths.sum() == 0:
        return out
    flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in seqs])
    ends = np.cumsum(lengths)  # exclusive end of each sequence in `flat`
    cols = np.arange(width)
    src = ends[:, None] - width + cols[None, :]  # where column c of row r comes from
    valid = cols[None, :] >= (width - np.minimum(lengths, width))[:, None]
    out[valid] = flat[src[valid]]
    return out


class InteractionIndex:
    """Membership test "did user u interact with item i in training" for arrays of pairs, via a
    sorted key array (``u · (num_items + 1) + i``) and ``searchsorted``."""

    def __init__(self, user_ids: np.ndarray, seqs: Sequence[np.ndarray], num_items: int):
        self.stride = np.int64(num_items + 1)
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in seqs]) if len(seqs) else np.zeros(0, np.int64)
        self.keys = np.unique(np.repeat(np.asarray(user_ids, dtype=np.int64), lengths) * self.stride + flat)

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        q = users * self.stride + items
        if self.keys.size == 0:
            return np.zeros(q.shape, dtype=bool)
        pos = np.searchsorted(self.keys, q)
        return self.keys[np.minimum(pos, self.keys.size - 1)] == q


def sample_negatives(
    users: np.ndarray,
    shape: tuple[int, ...],
    num_items: int,
    index: InteractionIndex,
    rng: np.random.Generator,
    max_rounds: int = 100,
) -> np.ndarray:
    """Uniform item ids in ``1..num_items`` not in each user's training set.

    ``users`` broadcasts against ``shape``. Rejection sampling, vectorised: redraw only the
    collisions, round after round (the collision share shrinks geometrically). After
    ``max_rounds`` the few remaining collisions are kept (only possible for a user who has seen
    almost the whole catalogue) and a warning is logged.
    """
    users = np.broadcast_to(users, shape)
    neg = rng.integers(1, num_items + 1, size=shape, dtype=np.int64)
    bad = index.contains(users, neg)
    for _ in range(max_rounds):
        n_bad = int(bad.sum())
        if n_bad == 0:
            return neg
        redraw = rng.integers(1, num_items + 1, size=n_bad, dtype=np.int64)
        neg[bad] = redraw
        still = index.contains(users[bad], redraw)
        bad[bad] = still
    if bad.any():
        logger.warning("%d negatives collide with training items after %d rounds (users with near-complete histories)",
                       int(bad.sum()), max_rounds)
    return neg


def _batch_collate(batch):
    """The dataset already returns whole batches (``__getitems__``); nothing to collate."""
    return batch


class SequenceTrainingSamples(Dataset):
    """One row per trainable user: ``input_ids``/``positive_ids``/``negative_ids`` of length
    ``maxlen`` (see the module docstring). Call :meth:`set_epoch` before each epoch."""

    collate_fn = staticmethod(_batch_collate)

    def __init__(self, train_sequences: Sequence[np.ndarray], user_ids: np.ndarray, num_items: int, maxlen: int,
                 num_negatives: int = 1, seed: int = 42):
        user_ids = np.asarray(user_ids, dtype=np.int64)
        keep = np.fromiter((len(s) >= 2 for s in train_sequences), dtype=bool, count=len(train_sequences))
        seqs = [s for s, k in zip(train_sequences, keep) if k]
        self.user_ids = user_ids[keep]
        self.num_items, self.maxlen, self.num_negatives, self.seed = num_items, maxlen, num_negatives, seed
        window = last_items_matrix(seqs, maxlen + 1)  # (U, L+1): inputs are [:, :-1], targets [:, 1:]
        inputs = window[:, :-1]
        # A target only where there is an input: for n = 2 the window is [0 … 0, i_1, i_2], and
        # the slot holding i_1 in `window[:, 1:]` sits over a padding input.
        targets = np.where(inputs != 0, window[:, 1:], 0)
        self.input_ids = torch.from_numpy(np.ascontiguousarray(inputs))
        self.positive_ids = torch.from_numpy(np.ascontiguousarray(targets))
        self.index = InteractionIndex(self.user_ids, seqs, num_items)
        self.negative_ids = torch.zeros(self.positive_ids.shape + (num_negatives,), dtype=torch.long)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        rng = np.random.default_rng([self.seed, epoch])
        shape = tuple(self.positive_ids.shape) + (self.num_negatives,)
        neg = sample_negatives(self.user_ids[:, None, None], shape, self.num_items, self.index, rng)
        neg[self.positive_ids.numpy() == 0] = 0
        # (U, L) for one negative (the reference layout), (U, L, K) otherwise.
        self.negative_ids = torch.from_numpy(np.ascontiguousarray(neg[..., 0] if self.num_negatives == 1 else neg))

    def __len__(self) -> int:
        return len(self.user_ids)

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return {"input_ids": self.input_ids[idx], "positive_ids": self.positive_ids[idx], "negative_ids": self.negative_ids[idx]}

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([i]).items()}


class PointwiseTrainingSamples(Dataset):
    """One row per training interaction: ``user_ids``, ``positive_ids`` and ``negative_ids``
    (``num_negatives`` per row) for NCF."""

    collate_fn = staticmethod(_batch_collate)

    def __init__(self, train_sequences: Sequence[np.ndarray], user_ids: np.ndarray, num_items: int,
                 num_negatives: int = 4, seed: int = 42):
        user_ids = np.asarray(user_ids, dtype=np.int64)
        lengths = np.fromiter((len(s) for s in train_sequences), dtype=np.int64, count=len(train_sequences))
        flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in train_sequences]) if len(train_sequences) else np.zeros(0, np.int64)
        self.users = np.repeat(user_ids, lengths)
        self.num_items, self.num_negatives, self.seed = num_items, num_negatives, seed
        self.user_ids = torch.from_numpy(self.users)
        self.positive_ids = torch.from_numpy(flat)
        self.index = InteractionIndex(user_ids, train_sequences, num_items)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        rng = np.random.default_rng([self.seed, epoch])
        neg = sample_negatives(self.users[:, None], (len(self.users), self.num_negatives), self.num_items, self.index, rng)
        self.negative_ids = torch.from_numpy(neg)

    def __len__(self) -> int:
        return len(self.users)

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return {"user_ids": self.user_ids[idx], "positive_ids": self.positive_ids[idx], "negative_ids": self.negative_ids[idx]}

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([i]).items()}


__all__ = [
    "last_items_matrix",
    "InteractionIndex",
    "sample_negatives",
    "SequenceTrainingSamples",
    "PointwiseTrainingSamples",
]
