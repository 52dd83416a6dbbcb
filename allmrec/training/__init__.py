"""Training infrastructure shared by every ``allmrec train …`` command.

* :mod:`.accelerator` — one way to build the ``Accelerator`` (precision, launcher settings, DDP options);
* :mod:`.checkpointing` — resumable training state (``--save-state-every`` / ``--resume-from``) written
  with ``accelerator.save_state`` but **without frozen weights** (no LLM, no frozen CF model);
* :mod:`.prompt_loop` — the optimisation loop of the prompt-based LLM models (A-LLMRec stage 2,
  MLP-LLM, TALLRec): global batches split over processes and gradient-accumulation micro-batches with an
  exactly normalised token loss, early stopping on validation Hit@1, resume mid-epoch;
* :mod:`.distributed` — sharding evaluation users across processes and gathering them back in order.

The pipeline folders (``cf``, ``alignment``, ``model``, ``baselines``) own *what* is trained; this
package owns *how* it runs on one or many processes.
"""

from .accelerator import build_accelerator, resolve_mixed_precision
from .checkpointing import ScalingArguments, TrainingStateManager
from .distributed import shard_and_gather

__all__ = ["build_accelerator", "resolve_mixed_precision", "ScalingArguments", "TrainingStateManager", "shard_and_gather"]
