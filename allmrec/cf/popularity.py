"""MostPop: rank candidates by how often they were interacted with in the training split.

Not in the paper's tables, but the floor every recommender paper is read against: on 20 candidates with 19 random
negatives, popularity alone picks the target far above chance (ml-100k: Hit@1 0.21 against 0.05), because the
target is a real next interaction and negatives are drawn uniformly from the catalogue. It is also what a model that
ignores the user can still reach, so it is the reference for ``--ablate shuffle-users``.

``allmrec evaluate --model pop --data D`` scores it with the CF evaluator (same stored candidates, pessimistic ties,
full-catalogue ranking with the history excluded). It has no weights and no checkpoint: the counts are the prepared
dataset's ``items.train_count``.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

#: the ``--model`` value that names it on the command line
POPULARITY_MODEL = "pop"


class MostPopular(nn.Module):
    """The CF scoring interface (``score`` / ``score_all_items``) over fixed training counts; the history is unused."""

    def __init__(self, train_count: np.ndarray) -> None:
        super().__init__()
        counts = torch.as_tensor(np.asarray(train_count, dtype=np.float32))
        if counts.ndim != 1 or len(counts) < 2:
            raise ValueError("train_count must be one count per item id 0..N (0 = padding)")
        self.register_buffer("counts", counts)
        # what the evaluator reads from a CF model's config: maxlen for the history matrix, the type for results
        self.config = SimpleNamespace(model_type="pop", maxlen=1, num_items=len(counts) - 1)
        self.name_or_path = POPULARITY_MODEL

    @property
    def device(self) -> torch.device:
        return self.counts.device

    def score(self, item_seq: torch.LongTensor, items: torch.LongTensor, user_ids: torch.LongTensor | None = None) -> torch.Tensor:
        return self.counts[items]

    def score_all_items(self, item_seq: torch.LongTensor, user_ids: torch.LongTensor | None = None) -> torch.Tensor:
        return self.counts.expand(item_seq.shape[0], -1)


__all__ = ["MostPopular", "POPULARITY_MODEL"]
