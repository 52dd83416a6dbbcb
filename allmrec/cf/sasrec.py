"""SASRec (Kang & McAuley, ICDM 2018) as a Hugging Face model, faithful to the code A-LLMRec uses.

Reference: ``pre_train/sasrec/model.py`` of ghdtjr/A-LLMRec (a pmixer/SASRec.pytorch copy):

* item embedding ``(num_items + 1, d)`` with padding id 0, multiplied by √d at the input, plus a
  learned position embedding for slots ``0 .. maxlen-1`` (padding slots included);
* embedding dropout, then padding positions zeroed;
* per block: ``Q = LN(x)``; ``x = Q + MHA(Q, x, x)`` under a causal mask (no key-padding mask);
  ``x = LN(x)``; ``x = x + FFN(x)`` (point-wise, ReLU, dropout after each linear); padding
  positions zeroed;
* a final LayerNorm (eps 1e-8).

A-LLMRec reads the **user representation** = the output at the last position after the final
LayerNorm, and the **item embedding** = the raw ``item_emb`` row, without the √d scaling.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig

from .base import require_config
from .losses import check_loss_type
from .sequential import SequentialCFModel


class SASRecConfig(PretrainedConfig):
    r"""Configuration of :class:`SASRecModel`. Defaults are the paper's / reference code's.

    Args:
        num_items (`int`): number of items; ids run ``1..num_items``, 0 is padding.
        hidden_size (`int`, defaults to 50): embedding and hidden size d.
        num_blocks (`int`, defaults to 2): self-attention blocks.
        num_heads (`int`, defaults to 1): attention heads (must divide ``hidden_size``).
        dropout_rate (`float`, defaults to 0.5): dropout on embeddings, attention and FFN.
        maxlen (`int`, defaults to 50): sequence length; longer histories keep their last items.
        layer_norm_eps (`float`, defaults to 1e-8): epsilon of every LayerNorm.
        loss_type (`str`, defaults to ``"bce"``): ``bce`` (one sampled negative per position, the
            paper) or ``ce`` (full-softmax cross-entropy); recorded so a checkpoint says how it
            was trained.
    """

    model_type = "sasrec"

    def __init__(
        self,
        num_items: int = 0,
        hidden_size: int = 50,
        num_blocks: int = 2,
        num_heads: int = 1,
        dropout_rate: float = 0.5,
        maxlen: int = 50,
        layer_norm_eps: float = 1e-8,
        loss_type: str = "bce",
        **kwargs,
    ):
        name = type(self).__name__
        require_config(num_items >= 0, name, f"num_items must be >= 0, got {num_items}")
        require_config(hidden_size > 0 and num_blocks > 0 and num_heads > 0 and maxlen > 0, name,
                       "hidden_size, num_blocks, num_heads and maxlen must be positive")
        require_config(hidden_size % num_heads == 0, name, f"num_heads ({num_heads}) must divide hidden_size ({hidden_size})")
        require_config(0.0 <= dropout_rate < 1.0, name, f"dropout_rate must be in [0, 1), got {dropout_rate}")
        self.num_items = int(num_items)
        self.hidden_size = int(hidden_size)
        self.num_blocks = int(num_blocks)
        self.num_heads = int(num_heads)
        self.dropout_rate = float(dropout_rate)
        self.maxlen = int(maxlen)
        self.layer_norm_eps = float(layer_norm_eps)
        self.loss_type = check_loss_type(loss_type)
        super().__init__(**kwargs)


class SASRecPointWiseFeedForward(nn.Module):
    """The reference FFN: ``x + Dropout(W2 · Dropout(ReLU(W1 · x)))``. The reference uses
    ``Conv1d(kernel_size=1)``, which is the same map as a ``Linear`` (same fan-in, same init)."""

    def __init__(self, hidden_size: int, dropout_rate: float):
        super().__init__()
        self.conv1 = nn.Linear(hidden_size, hidden_size)
        self.dropout1 = nn.Dropout(dropout_rate)
        self.conv2 = nn.Linear(hidden_size, hidden_size)
        self.dropout2 = nn.Dropout(dropout_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.dropout2(self.conv2(self.dropout1(torch.relu(self.conv1(x)))))


class SASRecBlock(nn.Module):
    def __init__(self, config: SASRecConfig):
        super().__init__()
        d = config.hidden_size
        self.attention_layernorm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.attention = nn.MultiheadAttention(d, config.num_heads, dropout=config.dropout_rate, batch_first=True)
        self.forward_layernorm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.feed_forward = SASRecPointWiseFeedForward(d, config.dropout_rate)

    def forward(self, x: torch.Tensor, causal_mask: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        # Only the query is normalised; keys/values see the raw stream (reference code).
        q = self.attention_layernorm(x)
        attn, _ = self.attention(q, x, x, attn_mask=causal_mask, need_weights=False)
        x = q + attn
        x = self.feed_forward(self.forward_layernorm(x))
        return x * keep


class SASRecModel(SequentialCFModel):
    """SASRec; see the module docstring for the exact architecture.

    Example::

        >>> cfg = SASRecConfig(num_items=100)
        >>> model = SASRecModel(cfg)
        >>> model.user_representation(torch.tensor([[0, 0, 5, 7]])).shape
        torch.Size([1, 50])
    """

    config_class = SASRecConfig

    def __init__(self, config: SASRecConfig):
        super().__init__(config)
        require_config(config.num_items > 0, "SASRecConfig", "num_items must be set (> 0) to build a model")
        d = config.hidden_size
        self.item_emb = nn.Embedding(config.num_items + 1, d, padding_idx=0)
        self.pos_emb = nn.Embedding(config.maxlen, d)
        self.emb_dropout = nn.Dropout(config.dropout_rate)
        self.blocks = nn.ModuleList([SASRecBlock(config) for _ in range(config.num_blocks)])
        self.last_layernorm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.post_init()

    def sequence_features(self, input_ids: torch.LongTensor) -> torch.Tensor:
        batch, length = input_ids.shape
        x = self.item_emb(input_ids) * math.sqrt(self.config.hidden_size)
        x = x + self.pos_emb(torch.arange(length, device=input_ids.device)).unsqueeze(0)
        x = self.emb_dropout(x)
        keep = (input_ids != 0).unsqueeze(-1).to(x.dtype)
        x = x * keep
        # True = "may not attend": everything above the diagonal (the future).
        causal_mask = torch.triu(torch.ones(length, length, dtype=torch.bool, device=input_ids.device), diagonal=1)
        for block in self.blocks:
            x = block(x, causal_mask, keep)
        return self.last_layernorm(x)


# Registered on import, so `AutoModel.from_pretrained(dir)` works as soon as the class is importable.
AutoConfig.register(SASRecConfig.model_type, SASRecConfig, exist_ok=True)
AutoModel.register(SASRecConfig, SASRecModel, exist_ok=True)


__all__ = ["SASRecConfig", "SASRecModel"]
