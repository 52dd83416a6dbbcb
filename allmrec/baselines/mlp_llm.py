"""MLP-LLM (paper §5.1 baselines, Table 1): A-LLMRec **without stage-1 alignment**.

The CF model's user representation x^u and raw item embeddings E_i are projected straight into the frozen
LLM's token space by the stage-2 MLPs F_U and F_I. Everything else — prompt with soft tokens, samples,
candidates, loss, optimiser, early stopping, checkpoint format, evaluation — is A-LLMRec's stage 2, run by
the very same code (:func:`allmrec.model.training.train_stage2`).

How: stage 2 reads the item vectors that F_I consumes from a stage-1 output directory (``config.json`` with
``cf_model_path`` + ``item_embeddings.safetensors`` with ``joint`` / ``text``). MLP-LLM's "alignment" is the
identity: :func:`write_identity_alignment` writes a directory in that format whose ``joint`` table is
``E_i = cf.item_embeddings(i)`` (``d`` = the CF hidden size, e.g. 50, instead of d' = 128; row 0 zeros). The
``text`` table is the same E_i, since MLP-LLM has no text encoder: ``item_embedding`` = ``text`` / ``auto``
(``allmrec evaluate``'s default) therefore give exactly the ``cf`` result. The checkpoint is a normal stage-2
checkpoint (``ALLMRecForRecommendation``; ``latent_dim`` = d) and answers ``allmrec evaluate`` in both modes.

So the two models differ only in what produces F_I's input — the stage-1 encoder f_I^enc(E_i) or nothing —
and, as a consequence, in F_I's input width (d' vs d). ``tests/test_baselines.py`` checks exactly that.

The checkpoint's ``config.json`` records ``baseline: "mlp-llm"`` and ``alignment: "none"`` and, since the
identity directory is temporary, ``stage1_path`` is cleared after training.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

from ..errors import AllmrecError, CheckpointError
from ..utils.io import atomic_write_json, clean_stale_temporaries
from ..utils.logging import get_logger

logger = get_logger(__name__)

ALIGNMENT_MODEL_TYPE = "allmrec_identity_alignment"


def raw_item_embeddings(cf_model):
    """``(num_items + 1, d)`` float32 E_i of every item id (row 0 = padding, zeroed)."""
    import torch

    ids = torch.arange(int(cf_model.config.num_items) + 1, device=next(cf_model.parameters()).device)
    with torch.no_grad():
        table = cf_model.item_embeddings(ids).detach().float().cpu().clone()
    table[0] = 0
    return table


def write_identity_alignment(cf_model_path: str | Path, directory: str | Path) -> Path:
    """A stage-1-format directory whose item tables are the raw CF item embeddings (see the module docstring)."""
    from safetensors.torch import save_file

    from ..cf import load_cf_model

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cf = load_cf_model(cf_model_path)
    table = raw_item_embeddings(cf)
    # Several processes of one launch write the same bytes here: each writes its own temporary file and
    # renames it (atomic), so no reader ever sees a half-written table.
    final = directory / "item_embeddings.safetensors"
    clean_stale_temporaries(final)
    tmp = directory / f".{final.name}.tmp-{os.getpid()}"
    save_file({"joint": table, "text": table.clone()}, str(tmp))
    os.replace(tmp, final)
    atomic_write_json(directory / "config.json", {
        "model_type": ALIGNMENT_MODEL_TYPE,
        "cf_model_path": str(cf_model_path),
        "latent_dim": int(table.shape[1]),
        "alignment": "none: joint = text = the CF model's raw item embeddings E_i (MLP-LLM)",
    })
    return directory


def train_mlpllm(args) -> dict:
    """Train MLP-LLM with stage 2's trainer. ``args`` is a
    :class:`~allmrec.model.training.Stage2TrainingArguments` whose ``stage1`` is ignored and whose
    ``cf_model`` is required."""
    from ..model.training import TRAINING_LOG, train_stage2

    if not args.cf_model:
        raise AllmrecError("MLP-LLM needs --cf-model (the CF checkpoint whose embeddings are projected into the LLM)")
    if args.item_embedding != "cf":
        raise AllmrecError("MLP-LLM has only the CF item embeddings: --item-embedding must be cf")
    out = Path(args.out)
    # A fixed path (not a random temporary one): a resumed run must present the same arguments.
    identity = write_identity_alignment(args.cf_model, out.parent / f".{out.name}.mlpllm-identity")
    log = train_stage2(replace(args, stage1=str(identity)))
    from ..training.distributed import is_main_process

    if is_main_process():  # train_stage2 ends with every process past its last read of the tables
        shutil.rmtree(identity, ignore_errors=True)
    _record_provenance(out, args.cf_model, TRAINING_LOG)
    log["args"]["stage1"] = None
    log["baseline"] = "mlp-llm"
    return log


def _record_provenance(out: Path, cf_model_path: str, training_log: str) -> None:
    """Replace the temporary identity-directory path with what MLP-LLM is (the directory is gone)."""
    cfg_file = out / "config.json"
    if not cfg_file.is_file():
        raise CheckpointError(f"stage-2 training wrote no {cfg_file}")
    cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    cfg.update({"stage1_path": None, "baseline": "mlp-llm", "alignment": "none", "cf_model_path": str(cf_model_path)})
    atomic_write_json(cfg_file, cfg)
    log_file = out / training_log
    if log_file.is_file():
        log = json.loads(log_file.read_text(encoding="utf-8"))
        log["args"]["stage1"] = None
        log["baseline"] = "mlp-llm"
        atomic_write_json(log_file, log)


__all__ = ["raw_item_embeddings", "write_identity_alignment", "train_mlpllm"]
