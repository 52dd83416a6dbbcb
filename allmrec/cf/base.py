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

:class:`CFPreTrainedModel` is the ``PreTrainedModel`` base the four backbones share (weight
initialisation, input fitting); :class:`CFModelOutput` is what their ``forward`` returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as hf_init
from transformers.utils import ModelOutput


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

    def score_all_items(self, item_seq: torch.LongTensor, user_ids: torch.LongTensor | None = None) -> torch.Tensor:
        """``(B, L)`` histories → ``(B, num_items + 1)`` scores for every item id (column 0 is the
        padding id; callers mask it). Used by full-ranking evaluation."""
        u = self.user_representation(item_seq, user_ids)
        all_ids = torch.arange(self.config.num_items + 1, device=u.device)
        return u @ self.item_embeddings(all_ids).T


@dataclass
class CFModelOutput(ModelOutput):
    """Output of a CF backbone's ``forward``.

    Args:
        loss: training loss (only when positive ids are given).
        last_hidden_state: ``(B, L, d)`` per-position sequence features (sequential models) or
            ``(B, d)`` user representations (NCF).
    """

    loss: torch.Tensor | None = None
    last_hidden_state: torch.Tensor | None = None


class CFPreTrainedModel(PreTrainedModel, CFRecommenderMixin):
    """Shared base of the CF backbones.

    Initialisation follows the SASRec reference code (``pre_train/sasrec/main.py``), which runs
    ``xavier_normal_`` over every parameter with ≥ 2 dimensions and leaves 1-D ones (biases,
    norms) at their PyTorch defaults. The padding row of every item table is then zeroed so that
    ``item_embeddings(0)`` is the zero vector.
    """

    base_model_prefix = "cf"
    main_input_name = "input_ids"
    #: "sequence" (seq/pos/neg arrays per user) or "pointwise" ((user, item) pairs): which
    #: training samples :mod:`allmrec.cf.samples` builds for this model.
    training_input = "sequence"

    def _init_weights(self, module: nn.Module) -> None:
        for name, param in module.named_parameters(recurse=False):
            if param.dim() >= 2:
                hf_init.xavier_normal_(param)
            elif name == "weight" and isinstance(module, nn.LayerNorm):
                hf_init.ones_(param)
            elif name == "bias" and isinstance(module, (nn.LayerNorm, nn.MultiheadAttention)):
                hf_init.zeros_(param)
        if isinstance(module, nn.MultiheadAttention) and module.in_proj_bias is not None:
            hf_init.zeros_(module.in_proj_bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            # Slicing drops the `_is_hf_initialized` flag, so check it on the full tensor first
            # (otherwise a loaded checkpoint's padding row would be overwritten).
            if not getattr(module.weight, "_is_hf_initialized", False):
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()

    def fit_to_maxlen(self, item_seq: torch.LongTensor) -> torch.LongTensor:
        """Left-pad (with 0) or left-truncate ``(B, L)`` to ``(B, maxlen)``: positions are learned
        for exactly ``maxlen`` slots, with the most recent item always in the last one."""
        maxlen = int(self.config.maxlen)
        item_seq = item_seq.to(self.device, dtype=torch.long)
        length = item_seq.shape[1]
        if length > maxlen:
            return item_seq[:, -maxlen:]
        if length < maxlen:
            return nn.functional.pad(item_seq, (maxlen - length, 0), value=0)
        return item_seq


def pad_sequences(seqs: Sequence[np.ndarray | Sequence[int]], maxlen: int) -> torch.LongTensor:
    """Keep the last ``maxlen`` items of each sequence and left-pad with 0 → ``(B, maxlen)``."""
    out = np.zeros((len(seqs), maxlen), dtype=np.int64)
    for i, s in enumerate(seqs):
        s = np.asarray(s, dtype=np.int64)[-maxlen:]
        if len(s):
            out[i, maxlen - len(s):] = s
    return torch.from_numpy(out)


__all__ = ["CFRecommenderMixin", "CFPreTrainedModel", "CFModelOutput", "pad_sequences"]


class quiet_hf_progress:
    """Context manager: hide transformers' per-file progress bars ("Writing model shards",
    "Loading weights"), which for a 400 kB CF checkpoint are pure noise in training logs."""

    def __enter__(self):
        from transformers.utils import logging as hf_logging

        self._was_enabled = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        return self

    def __exit__(self, *exc):
        from transformers.utils import logging as hf_logging

        if self._was_enabled:
            hf_logging.enable_progress_bar()
        return False


def require_config(condition: bool, config_name: str, message: str) -> None:
    """Config validation: raise a one-line :class:`~allmrec.errors.AllmrecError` naming the config."""
    if not condition:
        try:
            from allmrec.errors import AllmrecError
        except ImportError:  # Hub remote code without allmrec
            AllmrecError = ValueError

        raise AllmrecError(f"{config_name}: {message}")


__all__ += ["require_config", "quiet_hf_progress"]
