"""Gradient accumulation for the row-batched loops (CF backbones, stage 1).

``--gradient-accumulation-steps N`` means the same thing in every ``allmrec train`` command: each
optimisation step's batch is split into N micro-batches per process, processed one after the other with
gradient synchronisation only on the last (``accelerator.no_sync``), and weighted by their share of the
rows — the update of the whole batch with 1/N of the activation memory. (The prompt loop in
:mod:`.prompt_loop` weights by target tokens instead: its loss is a token mean.)
"""

from __future__ import annotations

import contextlib
from typing import Callable

import numpy as np


def row_slices(n_rows: int, parts: int) -> list[slice]:
    """``parts`` contiguous, non-empty slices covering ``range(n_rows)`` (fewer when rows are few)."""
    parts = max(1, min(parts, n_rows))
    bounds = np.linspace(0, n_rows, parts + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def accumulate_backward(accelerator, model, n_rows: int, parts: int, loss_of: Callable[[slice], object]):
    """Backward ``loss_of(rows)`` (a mean over those rows) for each micro-batch, weighted by its rows.

    Returns the list of per-micro-batch outputs of ``loss_of`` (objects with ``.loss``) and their row counts.
    """
    slices = row_slices(n_rows, parts)
    outputs = []
    for j, sl in enumerate(slices):
        last = j == len(slices) - 1
        with (contextlib.nullcontext() if last else accelerator.no_sync(model)):
            out = loss_of(sl)
            weight = (sl.stop - sl.start) / n_rows
            accelerator.backward(out.loss * weight if len(slices) > 1 else out.loss)
        outputs.append((out, sl.stop - sl.start))
    return outputs


__all__ = ["row_slices", "accumulate_backward"]
