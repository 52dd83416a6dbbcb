"""Publishing: the model-card template and push tooling (see ARCHITECTURE.md).

* ``MODEL_CARD.md`` — the Jinja card template (a link to the repository root's ``MODEL_CARD.md``, so it ships
  with the package); :mod:`hub.card` renders it with ``huggingface_hub.ModelCard`` from the checkpoint, the
  prepared dataset's manifest and evaluation results files.
* :mod:`hub.checkpoint` — recognises an A-LLMRec checkpoint or a TALLRec adapter and checks it is whole.
* :mod:`hub.push` — one-commit publishing (``allmrec push``, :mod:`hub.cli`).

The model code that travels *inside* a checkpoint (Hub remote code) is not here: ``save_pretrained`` copies
``allmrec/model/{configuration,modeling,processing}_allmrec.py``, ``prompts.py`` and the CF model's files.
Nothing in this package imports torch at import time.
"""

from .card import check_card_metadata, load_manifest, load_results, render_card
from .checkpoint import CheckpointInfo, inspect_checkpoint
from .push import PushResult, prepare_push, push_checkpoint

__all__ = [
    "CheckpointInfo", "PushResult", "check_card_metadata", "inspect_checkpoint", "load_manifest", "load_results",
    "prepare_push", "push_checkpoint", "render_card",
]
