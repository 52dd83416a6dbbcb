"""What the three sequential backbones (SASRec, GRU4Rec, NextItNet) share.

Each subclass only implements ``sequence_features``: ``(B, L)`` left-padded item ids →
``(B, L, d)``, where the output at position ``t`` summarises items ``≤ t`` (causal). Everything
else — the training loss, the user representation (the right-most position), the item
embedding (the raw ``item_emb`` row) and scoring — is defined once here.
"""

from __future__ import annotations

import torch

from .base import CFModelOutput, CFPreTrainedModel
from .losses import bce_loss, full_softmax_ce_loss


class SequentialCFModel(CFPreTrainedModel):
    """Base for models trained on (seq, pos, neg) arrays; subclasses define ``item_emb`` and
    ``sequence_features``."""

    training_input = "sequence"

    def sequence_features(self, input_ids: torch.LongTensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(
        self,
        input_ids: torch.LongTensor,
        positive_ids: torch.LongTensor | None = None,
        negative_ids: torch.LongTensor | None = None,
        **kwargs,
    ) -> CFModelOutput:
        """``input_ids`` ``(B, L)``; with ``positive_ids`` ``(B, L)`` (the next item at each
        position, 0 = no target) the loss is computed: BCE needs ``negative_ids`` ``(B, L)`` or
        ``(B, L, K)``, CE scores the whole catalogue."""
        feats = self.sequence_features(self.fit_to_maxlen(input_ids))
        loss = None
        if positive_ids is not None:
            loss = self.sequence_loss(feats, positive_ids.to(feats.device), negative_ids)
        return CFModelOutput(loss=loss, last_hidden_state=feats)

    def sequence_loss(self, feats: torch.Tensor, positive_ids: torch.LongTensor, negative_ids: torch.LongTensor | None) -> torch.Tensor:
        mask = positive_ids != 0
        if self.config.loss_type == "ce":
            # Only rows with a target are scored, against items 1..N: (n_targets, num_items).
            logits = feats[mask] @ self.item_emb.weight[1:].T
            return full_softmax_ce_loss(logits, positive_ids[mask])
        if negative_ids is None:
            raise ValueError("BCE training needs negative_ids")
        negative_ids = negative_ids.to(feats.device)
        if negative_ids.dim() == 2:
            negative_ids = negative_ids.unsqueeze(-1)
        pos_logits = (feats * self.item_emb(positive_ids)).sum(-1)
        neg_logits = torch.einsum("bld,blkd->blk", feats, self.item_emb(negative_ids))
        return bce_loss(pos_logits, neg_logits, mask)

    # ----------------------------------------------------------------- CF interface
    def user_representation(self, item_seq: torch.LongTensor, user_ids: torch.LongTensor | None = None) -> torch.Tensor:
        """The feature at the right-most position (the most recent item), shape ``(B, d)``."""
        return self.sequence_features(self.fit_to_maxlen(item_seq))[:, -1, :]

    def item_embeddings(self, item_ids: torch.LongTensor) -> torch.Tensor:
        """The raw ``item_emb`` rows (no input scaling), shape ``(*ids.shape, d)``."""
        return self.item_emb(item_ids.to(self.item_emb.weight.device))

    def get_input_embeddings(self):
        return self.item_emb

    def set_input_embeddings(self, value):
        self.item_emb = value


__all__ = ["SequentialCFModel"]
