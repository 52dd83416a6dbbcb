"""The four stage-1 loss terms (paper Eq. 2–5), as pure functions of tensors.

Reductions follow the official code (``nn.MSELoss()`` / ``nn.BCEWithLogitsLoss()``, i.e. means), and
every term is computed on the positive *and* the sampled negative item of each row and summed, as the
official ``pre_train_phase1`` does (``MSE(pos) + MSE(neg)``; the paper's expectations are over the
sequence items only, see official-code.md §8 item 4).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def matching_loss(item_latent: torch.Tensor, text_latent: torch.Tensor) -> torch.Tensor:
    """Eq. 2: MSE(e_i, q_i) = MSE(f_I^enc(E_i), f_T^enc(Q_i)), mean over rows and dimensions."""
    return F.mse_loss(item_latent.float(), text_latent.float())


def reconstruction_loss(reconstruction: torch.Tensor, target: torch.Tensor, detach_target: bool = False) -> torch.Tensor:
    """Eq. 3/4: MSE(x, f^dec(f^enc(x))). For the text autoencoder the target Q_i is detached, as in the
    official code (``Q.data``): SBERT then gets gradient only through the encoder input, not by moving
    the reconstruction target."""
    if detach_target:
        target = target.detach()
    return F.mse_loss(reconstruction.float(), target.float())


def rec_scores(user_repr: torch.Tensor, item_vectors: torch.Tensor, score: str = "dot") -> torch.Tensor:
    """s(x^u, v): ``dot`` = Σ_d x·v (Eq. 5); ``mean`` = mean_d x·v = dot / d (official code)."""
    prod = user_repr.float() * item_vectors.float()
    if score == "dot":
        return prod.sum(-1)
    if score == "mean":
        return prod.mean(-1)
    raise ValueError(f"unknown rec score {score!r}; use 'dot' or 'mean'")


def recommendation_loss(
    user_repr: torch.Tensor, pos_reconstruction: torch.Tensor, neg_reconstruction: torch.Tensor, score: str = "dot"
) -> torch.Tensor:
    """Eq. 5: BCE(s(x^u, f_I^dec(f_I^enc(E_pos))), 1) + BCE(s(x^u, f_I^dec(f_I^enc(E_neg))), 0), each a mean
    over rows (the paper's Eq. 5 sums over users and writes the positive twice; the code uses the negative
    in the second term and means, which only changes the scale)."""
    pos = rec_scores(user_repr, pos_reconstruction, score)
    neg = rec_scores(user_repr, neg_reconstruction, score)
    return F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos)) + F.binary_cross_entropy_with_logits(
        neg, torch.zeros_like(neg)
    )


def contrastive_matching_loss(item_latent: torch.Tensor, text_latent: torch.Tensor, temperature: float) -> torch.Tensor:
    """Optional replacement of Eq. 2 (not in the paper): symmetric InfoNCE over the U distinct items of a
    step, logits = −‖e_i − q_j‖² / τ, so every q_i must be closer to its own e_i than to the other items'
    (and vice versa). MSE matching only asks e_i ≈ q_i and is satisfied by shrinking both towards a
    constant; this term is not (a constant gives the chance-level loss log U)."""
    e, q = item_latent.float(), text_latent.float()
    # Squared distances expanded by hand: torch.cdist's gradient is undefined at distance 0.
    sq = (q * q).sum(1, keepdim=True) + (e * e).sum(1)[None, :] - 2.0 * q @ e.T
    logits = -sq.clamp(min=0) / temperature
    target = torch.arange(len(e), device=e.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


__all__ = ["matching_loss", "contrastive_matching_loss", "reconstruction_loss", "rec_scores", "recommendation_loss"]
