"""The interface every CF backbone offers to stage 1, stage 2 and evaluation.

A-LLMRec is model-agnostic (paper §5.4.3): it only reads two things from a frozen, pre-trained
collaborative-filtering model,

* the **user representation** ``x^u`` = ``user_representation(item_seq)`` → ``(B, d)``; for
  SASRec the output at the last (right-most) position after the final layer norm;
* the **item embedding** ``E_i`` = ``item_embeddings(ids)`` → ``(..., d)``; the raw embedding row
  (for SASRec *without* the √d input scaling),

and evaluation needs ``score(item_seq, items)`` → ``(B, C)`` logits for candidate items.

Sequences are **left-padded** with 0 to a fixed length (``config.maxlen``), most recent item
last, exactly as SASRec consumes them. Use :func:`pad_sequences` to build them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


class CFRecommenderMixin:
    """Mixin for CF ``PreTrainedModel`` classes; subclasses implement the three methods."""

    #: size d of user representations and item embeddings
    @property
    def hidden_size(self) -> int:  # pragma: no cover - overridden
        return int(self.config.hidden_size)

    def user_representation(self, item_seq: torch.LongTensor, user_ids: torch.LongTensor | None = None) -> torch.Tensor:
        """``(B, L)`` left-padded item ids → ``(B, d)``. ``user_ids`` is only used by non-sequential
        models (NCF)."""
        raise NotImplementedError

    def item_embeddings(self, item_ids: torch.LongTensor) -> torch.Tensor:
        """Any-shape item ids → ``(*shape, d)`` raw item embedding rows."""
        raise NotImplementedError

    def score(self, item_seq: torch.LongTensor, items: torch.LongTensor, user_ids: torch.LongTensor | None = None) -> torch.Tensor:
        """``(B, L)`` histories and ``(B, C)`` candidate ids → ``(B, C)`` scores (higher = better)."""
        u = self.user_representation(item_seq, user_ids)
        return torch.einsum("bd,bcd->bc", u, self.item_embeddings(items))


def pad_sequences(seqs: Sequence[np.ndarray | Sequence[int]], maxlen: int) -> torch.LongTensor:
    """Keep the last ``maxlen`` items of each sequence and left-pad with 0 → ``(B, maxlen)``."""
    out = np.zeros((len(seqs), maxlen), dtype=np.int64)
    for i, s in enumerate(seqs):
        s = np.asarray(s, dtype=np.int64)[-maxlen:]
        if len(s):
            out[i, maxlen - len(s):] = s
    return torch.from_numpy(out)


__all__ = ["CFRecommenderMixin", "pad_sequences"]
