"""NextItNet (Yuan et al., WSDM 2019): stacked dilated causal 1-D convolutions.

Each residual block (the paper's block "b", as in the reference and RecBole code) is

    x + ReLU(LN(conv_{2r}(ReLU(LN(conv_r(x))))))

with two causal convolutions of kernel ``k`` and dilation ``r`` and ``2r``; the blocks use the
configured dilation list. Causality comes from left-padding each convolution input by
``(k - 1)·dilation``, so position ``t`` sees only items ``≤ t``. User representation = the
output at the last position; item embedding = the raw ``item_emb`` row.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig

from .base import require_config
from .losses import check_loss_type
from .sequential import SequentialCFModel


class NextItNetConfig(PretrainedConfig):
    r"""Configuration of :class:`NextItNetModel`.

    Args:
        num_items (`int`): number of items; ids ``1..num_items``, 0 is padding.
        hidden_size (`int`, defaults to 50): embedding and channel size d.
        kernel_size (`int`, defaults to 3): convolution width (paper: 3).
        dilations (`list[int]`, defaults to ``[1, 2, 4, 8]``): one residual block per entry; each
            block convolves with dilation r then 2r. ``[1, 2, 4, 8]`` gives a receptive field of
            91 ≥ maxlen 50.
        maxlen (`int`, defaults to 50): sequence length.
        layer_norm_eps (`float`, defaults to 1e-8): LayerNorm epsilon.
        loss_type (`str`, defaults to ``"bce"``): ``bce`` or ``ce``.
    """

    model_type = "nextitnet"

    def __init__(
        self,
        num_items: int = 0,
        hidden_size: int = 50,
        kernel_size: int = 3,
        dilations: list[int] | tuple[int, ...] = (1, 2, 4, 8),
        maxlen: int = 50,
        layer_norm_eps: float = 1e-8,
        loss_type: str = "bce",
        **kwargs,
    ):
        name = type(self).__name__
        dilations = [int(r) for r in dilations]
        require_config(num_items >= 0, name, f"num_items must be >= 0, got {num_items}")
        require_config(hidden_size > 0 and kernel_size > 0 and maxlen > 0, name,
                       "hidden_size, kernel_size and maxlen must be positive")
        require_config(len(dilations) > 0 and all(r > 0 for r in dilations), name,
                       f"dilations must be a non-empty list of positive ints, got {dilations}")
        self.num_items = int(num_items)
        self.hidden_size = int(hidden_size)
        self.kernel_size = int(kernel_size)
        self.dilations = dilations
        self.maxlen = int(maxlen)
        self.layer_norm_eps = float(layer_norm_eps)
        self.loss_type = check_loss_type(loss_type)
        super().__init__(**kwargs)


class NextItNetCausalConv(nn.Module):
    """A 1-D convolution over ``(B, L, d)`` that only looks left."""

    def __init__(self, channels: int, kernel_size: int, dilation: int):
        super().__init__()
        self.left_pad = (kernel_size - 1) * dilation
        self.conv = nn.Conv1d(channels, channels, kernel_size, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x.transpose(1, 2), (self.left_pad, 0))
        return self.conv(x).transpose(1, 2)


class NextItNetResidualBlock(nn.Module):
    def __init__(self, config: NextItNetConfig, dilation: int):
        super().__init__()
        d, k = config.hidden_size, config.kernel_size
        self.conv1 = NextItNetCausalConv(d, k, dilation)
        self.norm1 = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.conv2 = NextItNetCausalConv(d, k, 2 * dilation)
        self.norm2 = nn.LayerNorm(d, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.norm1(self.conv1(x)))
        h = torch.relu(self.norm2(self.conv2(h)))
        return x + h


class NextItNetModel(SequentialCFModel):
    """NextItNet; see the module docstring."""

    config_class = NextItNetConfig

    def __init__(self, config: NextItNetConfig):
        super().__init__(config)
        require_config(config.num_items > 0, "NextItNetConfig", "num_items must be set (> 0) to build a model")
        self.item_emb = nn.Embedding(config.num_items + 1, config.hidden_size, padding_idx=0)
        self.blocks = nn.ModuleList([NextItNetResidualBlock(config, r) for r in config.dilations])
        self.post_init()

    def sequence_features(self, input_ids: torch.LongTensor) -> torch.Tensor:
        x = self.item_emb(input_ids)
        for block in self.blocks:
            x = block(x)
        return x


# Registered on import, so `AutoModel.from_pretrained(dir)` works as soon as the class is importable.
AutoConfig.register(NextItNetConfig.model_type, NextItNetConfig, exist_ok=True)
AutoModel.register(NextItNetConfig, NextItNetModel, exist_ok=True)


__all__ = ["NextItNetConfig", "NextItNetModel"]
