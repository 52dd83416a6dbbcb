"""Stage-1 training rows: (user history, positive item, sampled negative item).

As in the official ``SeqDataset`` every eligible user is visited once per epoch, and a negative is drawn
uniformly from the items the user never interacted with in training, fresh at every visit. Differences,
all deliberate:

* users with fewer than 2 training items are skipped (the official code feeds them with target id 0,
  i.e. the padding row and the text "No Title");
* the user order is shuffled per epoch (seeded); the official single-GPU loop never shuffles, its DDP
  loop does;
* every draw is seeded from (seed, epoch, shard), so a run is reproducible and shards never repeat
  each other's negatives.

``train_items="last"`` (paper default): one row per user, history = train[:-1], positive = train[-1].
``train_items="all"`` (A-LLMRec_all): one row per position t of the last ``maxlen`` training items,
history = train[:t], positive = train[t]; x^u for a prefix is the CF model's user representation of
that (left-padded) prefix, exactly how x^u is computed at inference time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from ..cf.base import pad_sequences
from ..errors import DataError


@dataclass
class Stage1Batch:
    """R rows; ``item_seq`` is left-padded to ``maxlen``."""

    user_ids: torch.LongTensor  # (R,)
    item_seq: torch.LongTensor  # (R, maxlen)
    pos_items: torch.LongTensor  # (R,)
    neg_items: torch.LongTensor  # (R,)

    def __len__(self) -> int:
        return len(self.pos_items)

    def to(self, device) -> "Stage1Batch":
        return Stage1Batch(*(t.to(device) for t in (self.user_ids, self.item_seq, self.pos_items, self.neg_items)))

    def unique_items(self) -> tuple[torch.LongTensor, torch.LongTensor, torch.LongTensor]:
        """Distinct items of the batch and, for each row, the index of its positive / negative among them
        (so each distinct item's text is encoded once per step)."""
        both = torch.cat([self.pos_items, self.neg_items])
        unique, inverse = torch.unique(both, return_inverse=True)
        return unique, inverse[: len(self)], inverse[len(self):]


class NegativeSampler:
    """Uniform negatives from ``1..num_items`` excluding each user's training items."""

    def __init__(self, train_sequences: Sequence[np.ndarray], num_items: int):
        self.num_items = int(num_items)
        self.seen = [frozenset(np.asarray(s, dtype=np.int64).tolist()) for s in train_sequences]
        for u, seen in enumerate(self.seen):
            if len(seen) >= self.num_items:
                raise DataError(f"user {u + 1} interacted with every one of the {self.num_items} items; no negative exists")

    def sample(self, user_index: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One negative per entry of ``user_index`` (0-based user indices), by rejection."""
        user_index = np.asarray(user_index, dtype=np.int64)
        out = rng.integers(1, self.num_items + 1, size=len(user_index))
        todo = np.arange(len(user_index))
        while len(todo):
            bad = np.fromiter((int(out[i]) in self.seen[user_index[i]] for i in todo), dtype=bool, count=len(todo))
            todo = todo[bad]
            out[todo] = rng.integers(1, self.num_items + 1, size=len(todo))
        return out


class Stage1Sampler:
    """Per-epoch, seeded batches of ``batch_size`` users (each user contributes 1 row, or one per
    position with ``train_items="all"``)."""

    def __init__(
        self,
        train_sequences: Sequence[np.ndarray],
        num_items: int,
        maxlen: int,
        batch_size: int = 32,
        train_items: str = "last",
        seed: int = 0,
        shuffle: bool = True,
        only_users: Sequence[int] | None = None,
    ):
        if batch_size <= 0:
            raise DataError(f"batch size must be positive, got {batch_size}")
        self.train_sequences = [np.asarray(s, dtype=np.int64) for s in train_sequences]
        self.num_items = int(num_items)
        self.maxlen = int(maxlen)
        self.batch_size = int(batch_size)
        self.train_items = train_items
        self.seed = int(seed)
        self.shuffle = shuffle
        # only_users: 1-based user ids to train on (the prepared few-shot subset, paper Table 6); None = everyone
        keep = None if only_users is None else {int(u) - 1 for u in only_users}
        self.users = np.array([u for u, s in enumerate(self.train_sequences)
                               if len(s) >= 2 and (keep is None or u in keep)], dtype=np.int64)
        if len(self.users) == 0:
            raise DataError("no user has 2 or more training items; stage 1 has nothing to learn from")
        self.negatives = NegativeSampler(self.train_sequences, num_items)

    def num_batches(self, num_shards: int = 1) -> int:
        per_shard = len(self.users) // num_shards if num_shards > 1 else len(self.users)
        return -(-per_shard // self.batch_size)

    def _rows(self, user_index: int) -> tuple[list[np.ndarray], list[int]]:
        seq = self.train_sequences[user_index]
        if self.train_items == "last":
            return [seq[:-1]], [int(seq[-1])]
        positions = range(max(1, len(seq) - self.maxlen), len(seq))
        return [seq[:t] for t in positions], [int(seq[t]) for t in positions]

    def epoch(self, epoch: int, shard: int = 0, num_shards: int = 1) -> Iterator[Stage1Batch]:
        order = self.users
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(order)
        if num_shards > 1:
            # Equal user counts per shard, so every process runs the same number of steps.
            keep = (len(order) // num_shards) * num_shards
            order = order[:keep][shard::num_shards]
        neg_rng = np.random.default_rng([self.seed, epoch, 1 + shard])
        for start in range(0, len(order), self.batch_size):
            histories, positives, users = [], [], []
            for u in order[start:start + self.batch_size]:
                h, p = self._rows(int(u))
                histories += h
                positives += p
                users += [int(u)] * len(p)
            users_np = np.asarray(users, dtype=np.int64)
            yield Stage1Batch(
                user_ids=torch.from_numpy(users_np + 1),
                item_seq=pad_sequences(histories, self.maxlen),
                pos_items=torch.tensor(positives, dtype=torch.long),
                neg_items=torch.from_numpy(self.negatives.sample(users_np, neg_rng)),
            )


def validation_batches(dataset, maxlen: int, batch_size: int = 256) -> list[Stage1Batch]:
    """Fixed rows of the ``valid`` split: history = the user's training items, positive = the held-out
    valid item, negative = the first of the row's prepared candidates that is not the target (drawn once,
    seeded, at preparation time: every epoch and every run is scored on the same rows)."""
    rows = dataset.eval_rows("valid")
    n = len(rows["target"])
    if n == 0:
        return []
    cands, tidx = rows["candidates"], rows["target_index"]
    neg = np.where(tidx == 0, cands[:, min(1, cands.shape[1] - 1)], cands[:, 0])
    out = []
    for start in range(0, n, batch_size):
        sl = slice(start, start + batch_size)
        out.append(
            Stage1Batch(
                user_ids=torch.from_numpy(rows["user_id"][sl].copy()),
                item_seq=pad_sequences(rows["history"][sl], maxlen),
                pos_items=torch.from_numpy(rows["target"][sl].copy()),
                neg_items=torch.from_numpy(neg[sl].copy()),
            )
        )
    return out


__all__ = ["Stage1Batch", "Stage1Sampler", "NegativeSampler", "validation_batches"]
