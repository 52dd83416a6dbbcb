"""GRU4Rec (Hidasi et al., ICLR 2016) in the next-item form used by sequential-rec toolkits.

Item embedding → dropout → a stack of GRU layers → (linear map back to d when the GRU's hidden
size differs) → the feature at each position. Trained with the same (seq, pos, neg) samples and
losses as SASRec (RecBole's GRU4Rec follows the same scheme), so backbones differ only in the
sequence encoder. User representation = the feature at the last position; item embedding = the
raw ``item_emb`` row.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig

from .base import require_config
from .losses import check_loss_type
from .sequential import SequentialCFModel


class GRU4RecConfig(PretrainedConfig):
    r"""Configuration of :class:`GRU4RecModel`.

    Args:
        num_items (`int`): number of items; ids ``1..num_items``, 0 is padding.
        hidden_size (`int`, defaults to 50): item embedding / output size d (50 as SASRec, so
            A-LLMRec's stage 1 sees the same d for every backbone).
        gru_hidden_size (`int`, defaults to 100): hidden size of the GRU (RecBole uses 2× the
            embedding size); a linear layer maps it back to d.
        num_layers (`int`, defaults to 1): stacked GRU layers.
        dropout_rate (`float`, defaults to 0.25): dropout on the input embeddings.
        maxlen (`int`, defaults to 50): sequence length.
        loss_type (`str`, defaults to ``"bce"``): ``bce`` or ``ce`` (see :mod:`allmrec.cf.losses`).
    """

    model_type = "gru4rec"

    def __init__(
        self,
        num_items: int = 0,
        hidden_size: int = 50,
        gru_hidden_size: int = 100,
        num_layers: int = 1,
        dropout_rate: float = 0.25,
        maxlen: int = 50,
        loss_type: str = "bce",
        **kwargs,
    ):
        name = type(self).__name__
        require_config(num_items >= 0, name, f"num_items must be >= 0, got {num_items}")
        require_config(hidden_size > 0 and gru_hidden_size > 0 and num_layers > 0 and maxlen > 0, name,
                       "hidden_size, gru_hidden_size, num_layers and maxlen must be positive")
        require_config(0.0 <= dropout_rate < 1.0, name, f"dropout_rate must be in [0, 1), got {dropout_rate}")
        self.num_items = int(num_items)
        self.hidden_size = int(hidden_size)
        self.gru_hidden_size = int(gru_hidden_size)
        self.num_layers = int(num_layers)
        self.dropout_rate = float(dropout_rate)
        self.maxlen = int(maxlen)
        self.loss_type = check_loss_type(loss_type)
        super().__init__(**kwargs)


class GRU4RecModel(SequentialCFModel):
    """GRU4Rec; left-padding ids map to the zero embedding, so the GRU starts every history from
    the same (bias-driven) state, in training and at inference alike."""

    config_class = GRU4RecConfig

    def __init__(self, config: GRU4RecConfig):
        super().__init__(config)
        require_config(config.num_items > 0, "GRU4RecConfig", "num_items must be set (> 0) to build a model")
        self.item_emb = nn.Embedding(config.num_items + 1, config.hidden_size, padding_idx=0)
        self.emb_dropout = nn.Dropout(config.dropout_rate)
        self.gru = nn.GRU(config.hidden_size, config.gru_hidden_size, num_layers=config.num_layers, batch_first=True)
        self.output_projection = nn.Linear(config.gru_hidden_size, config.hidden_size)
        self.post_init()

    def sequence_features(self, input_ids: torch.LongTensor) -> torch.Tensor:
        x = self.emb_dropout(self.item_emb(input_ids))
        out, _ = self.gru(x)
        return self.output_projection(out)


# Registered on import, so `AutoModel.from_pretrained(dir)` works as soon as the class is importable.
AutoConfig.register(GRU4RecConfig.model_type, GRU4RecConfig, exist_ok=True)
AutoModel.register(GRU4RecConfig, GRU4RecModel, exist_ok=True)


__all__ = ["GRU4RecConfig", "GRU4RecModel"]
