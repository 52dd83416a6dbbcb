"""A-LLMRec on a catalogue it was not trained on (paper §5.2.5, Table 7): the text path for every item.

A stage-2 model's item tables, CF item embeddings and titles belong to its training catalogue. For a foreign one
(e.g. trained on Movies and TV, evaluated on Video Games) nothing collaborative exists, but stage 1 left two maps
that need only an item's text:

* ``q_i = f_T^enc(SBERT(text_i))``: the text embedding in the joint space, which F_I reads for cold items
  (``item_embedding="text"``, the paper's "A-LLMRec (SBERT)");
* ``Ê_i = f_I^dec(q_i)``: since stage 1 trains ``q_i`` to match ``e_i = f_I^enc(E_i)``, the item decoder turns it into
  a vector in the CF model's item-embedding space. The frozen sequential CF model reads a foreign history through
  these rows (its positions, attention and layers unchanged), which gives x^u; ``item_embedding="cf"`` reads
  ``f_I^enc(Ê_i)`` (the joint embedding the item would have, had its CF row been Ê_i).

:func:`transfer_to_catalogue` rewrites a loaded model in place with these tables, the foreign titles and prompt
wording; F_U, F_I (and LoRA adapters), the LLM and the standardisation statistics stay those trained. A CF model that
represents users by id (NCF) has no representation for foreign users and is refused.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import CheckpointError, DataError
from ..utils.logging import get_logger

logger = get_logger(__name__)


def foreign_item_tables(stage1, texts: list[str], batch_size: int = 128) -> dict[str, torch.Tensor]:
    """``{"text": q, "joint": f_I^enc(Ê), "cf": Ê}`` for ``texts[1:]`` (row 0 = padding, zeros) with a stage-1 model."""
    if len(texts) < 2:
        raise DataError("the foreign catalogue has no items")
    q = stage1.encode_texts(list(texts[1:]), batch_size=batch_size).float().cpu()
    with torch.no_grad():
        cf_rows = stage1.item_autoencoder.decode(q.to(stage1.device)).float()
        joint = stage1.encode_items(cf_rows).float().cpu()
    pad = torch.zeros(1, q.shape[1])
    return {"text": torch.cat([pad, q]), "joint": torch.cat([pad, joint]),
            "cf": torch.cat([torch.zeros(1, cf_rows.shape[1]), cf_rows.cpu()])}


def transfer_to_catalogue(model, dataset, stage1_path: str | Path | None = None):
    """Point ``model`` (an :class:`ALLMRecForRecommendation`) at ``dataset``'s catalogue through the text path.

    ``stage1_path``: the stage-1 output the model was trained on (default: the ``stage1_path`` its config records);
    its fine-tuned SBERT and autoencoders compute the foreign tables. Returns the model.
    """
    from ..alignment import ALLMRecStage1Model

    given = stage1_path or model.config.stage1_path
    path = Path(given) if given else None
    if path is None or not (path / "config.json").is_file():
        raise CheckpointError(f"--cross-domain needs the stage-1 output this model was trained on (its SBERT and "
                              f"autoencoders embed the foreign items); {given or 'none'} is not one: pass --stage1 DIR")
    cf = model.cf_model
    if cf is None or getattr(cf, "training_input", "sequence") != "sequence" or not hasattr(cf, "set_input_embeddings"):
        kind = getattr(getattr(cf, "config", None), "model_type", "none")
        raise CheckpointError(f"--cross-domain: the CF model ({kind}) represents users by id, so a foreign catalogue's "
                              "users have no representation; use a sequential CF model (SASRec, GRU4Rec, NextItNet)")
    stage1 = ALLMRecStage1Model.from_pretrained(str(path))
    if stage1.config.item_dim != cf.hidden_size or stage1.config.latent_dim != model.config.latent_dim:
        raise CheckpointError(f"{path} does not fit this model: stage-1 item_dim {stage1.config.item_dim} / latent "
                              f"{stage1.config.latent_dim} vs CF hidden {cf.hidden_size} / latent {model.config.latent_dim}")
    tables = foreign_item_tables(stage1, dataset.texts)
    n = dataset.num_items
    if tables["text"].shape[0] != n + 1:
        raise DataError(f"{dataset.path}: {tables['text'].shape[0] - 1} item texts for {n} items")
    # the CF model reads foreign histories through Ê (a new table; the trained one is not touched in place)
    old = cf.get_input_embeddings()
    table = torch.nn.Embedding(n + 1, tables["cf"].shape[1], padding_idx=0).to(old.weight.device, old.weight.dtype)
    with torch.no_grad():
        table.weight.copy_(tables["cf"].to(table.weight))
    table.weight.requires_grad_(False)
    cf.set_input_embeddings(table)
    cf.config.num_items = n
    device = model.item_joint.device
    model.item_joint = tables["joint"].to(device, model.item_joint.dtype)
    model.item_text = tables["text"].to(device, model.item_text.dtype)
    model.item_train_count = torch.zeros(n + 1, dtype=torch.long, device=device)  # every item is cold here
    model.item_permutation = None
    model.item_titles = list(dataset.titles)
    model.config.num_items = n
    model.config.domain = dataset.domain
    model.config.cross_domain = {"dataset": dataset.name, "stage1_path": str(path)}
    logger.info("cross-domain: %d foreign items embedded through %s (SBERT → f_T^enc → q; f_I^dec(q) → CF rows)", n, path)
    return model


__all__ = ["foreign_item_tables", "transfer_to_catalogue"]
