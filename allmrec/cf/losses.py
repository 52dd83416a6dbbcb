"""Training losses shared by the CF backbones.

``bce``  the SASRec paper's loss (``pre_train/sasrec/main.py``): binary cross-entropy on the
         positive logit and on the logits of sampled negatives, averaged over the positions
         that hold a real next item (``pos != 0``). With one negative per position this is the
         reference implementation exactly.
``ce``   full-softmax cross-entropy over the whole catalogue (the "SASRec+" fix of Klenitskiy &
         Vasilev, RecSys'23): much stronger than one-negative BCE and what a fair baseline
         needs. The padding id 0 is excluded from the softmax.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

try:  # inside the allmrec package
    from allmrec.errors import AllmrecError
except ImportError:  # shipped as Hub remote code next to an A-LLMRec checkpoint, without allmrec
    AllmrecError = ValueError

LOSS_TYPES = ("bce", "ce")


def bce_loss(pos_logits: torch.Tensor, neg_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``pos_logits`` ``(*S)``, ``neg_logits`` ``(*S, K)``, ``mask`` ``(*S)`` bool → scalar.

    Positives and negatives are averaged separately and summed, as in the reference code
    (``bce(pos, 1) + bce(neg, 0)``), so K negatives weigh as much as the one positive.
    """
    pos = pos_logits[mask]
    neg = neg_logits[mask]
    if pos.numel() == 0:
        # A batch without a single target still has to produce a graph for DDP; zero gradient.
        return pos_logits.sum() * 0.0 + neg_logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos)) + F.binary_cross_entropy_with_logits(
        neg, torch.zeros_like(neg)
    )


def full_softmax_ce_loss(item_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``item_logits`` ``(N, num_items)`` for item ids ``1..num_items`` (the padding id 0 is left
    out of the softmax, by never computing its column), ``targets`` ``(N,)`` item ids → scalar."""
    if targets.numel() == 0:
        return item_logits.sum() * 0.0
    return F.cross_entropy(item_logits, targets - 1)


def check_loss_type(loss_type: str) -> str:
    if loss_type not in LOSS_TYPES:
        raise AllmrecError(f"loss_type must be one of {', '.join(LOSS_TYPES)}, got {loss_type!r}")
    return loss_type


__all__ = ["LOSS_TYPES", "bce_loss", "full_softmax_ce_loss", "check_loss_type"]
