"""One seed for every random choice: Python, NumPy, torch (and accelerate's RNG sync)."""

from __future__ import annotations

import random

import numpy as np


def set_seed(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


__all__ = ["set_seed"]
