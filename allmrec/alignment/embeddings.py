"""Per-item stage-1 outputs for the whole catalogue, and how good the alignment is.

``item_embeddings.safetensors`` (float32, row = item id, row 0 = padding = zeros):

* ``joint`` (num_items+1, d') — e_i = f_I^enc(E_i), what stage 2 feeds the LLM;
* ``text``  (num_items+1, d') — q_i = f_T^enc(SBERT(text_i)), the text path (A-LLMRec (SBERT)).

Stage 2 and evaluation read these instead of re-running the CF model and SBERT.

``alignment_report.json`` checks the three things that can go wrong in stage 1: collapse (per-dimension
variance of e and q across items), no real alignment (mean ‖e_i − q_i‖ for matched items vs shuffled
pairs), and alignment that does not identify items (retrieval accuracy@1 of q_i → e_i over the
catalogue, and e_i → q_i).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError

ITEM_EMBEDDINGS_FILE = "item_embeddings.safetensors"
ALIGNMENT_REPORT_FILE = "alignment_report.json"


@torch.no_grad()
def compute_item_embeddings(model, cf_model, text_inputs, num_items: int, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """e and q for items ``1..num_items`` (row 0 zeros), eval mode, float32 on CPU.

    ``text_inputs`` is an :class:`~allmrec.alignment.sbert.ItemTextInputs` over ``texts[0..num_items]``;
    the full SBERT runs here (no cached layers), so the result equals what ``model.encode_texts`` gives.
    """
    was_training = model.training
    model.eval()
    device = model.device
    cf_param = next(cf_model.parameters(), None)
    cf_device = cf_param.device if cf_param is not None else torch.device("cpu")
    try:
        ids = torch.arange(1, num_items + 1)
        joint = torch.zeros(num_items + 1, model.config.latent_dim)
        text = torch.zeros(num_items + 1, model.config.latent_dim)
        for start in range(0, num_items, batch_size):
            chunk = ids[start:start + batch_size]
            E = cf_model.item_embeddings(chunk.to(cf_device)).to(device, torch.float32)
            joint[chunk] = model.encode_items(E).float().cpu()
        for chunk in text_inputs.length_sorted_batches(ids, batch_size):
            feats = {k: v.to(device) for k, v in text_inputs.features(chunk, with_cache=False).items()}
            Q = model.embed_texts(feats).float()
            text[chunk] = model.encode_text_embeddings(Q).float().cpu()
    finally:
        model.train(was_training)
    return {"joint": joint, "text": text}


def save_item_embeddings(path: str | Path, embeddings: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous().float() for k, v in embeddings.items()}, str(path), metadata=metadata or {})


def load_stage1_item_embeddings(directory: str | Path) -> dict[str, torch.Tensor]:
    """``{"joint": (num_items+1, d'), "text": (num_items+1, d')}`` float32 from a stage-1 output directory."""
    from safetensors.torch import load_file

    path = Path(directory) / ITEM_EMBEDDINGS_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; {directory} is not a finished stage-1 output (run `allmrec train stage1`)")
    tensors = load_file(str(path))
    for key in ("joint", "text"):
        if key not in tensors:
            raise CheckpointError(f"{path} has no '{key}' tensor; re-run `allmrec train stage1`")
    if tensors["joint"].shape != tensors["text"].shape:
        raise CheckpointError(f"{path}: 'joint' {tuple(tensors['joint'].shape)} and 'text' {tuple(tensors['text'].shape)} differ")
    return tensors


def _own_rank(queries: torch.Tensor, keys: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """0-based rank of each query's own key (same row) among all keys by Euclidean distance. Ties count
    against the query, so a collapsed space (all distances equal) ranks every item last, not first."""
    ranks = []
    for start in range(0, len(queries), chunk):
        q = queries[start:start + chunk]
        d = torch.cdist(q.double(), keys.double())
        own = d[torch.arange(len(q)), torch.arange(start, start + len(q))]
        ranks.append((d <= own[:, None]).sum(1) - 1)
    return torch.cat(ranks)


def alignment_report(joint: torch.Tensor, text: torch.Tensor, seed: int = 0) -> dict:
    """Collapse, matched-vs-shuffled distance and retrieval statistics of e (``joint``) and q (``text``)
    over items 1..N (row 0, the padding, is excluded)."""
    e, q = joint[1:].double(), text[1:].double()
    n = len(e)
    if n < 2:
        raise CheckpointError("the alignment report needs at least 2 items")
    var_e, var_q = e.var(0, unbiased=True), q.var(0, unbiased=True)
    # A derangement: item k is paired with the next item of a random cycle, never with itself.
    perm = np.random.default_rng(seed).permutation(n)
    partner = np.empty(n, dtype=np.int64)
    partner[perm] = np.roll(perm, -1)
    matched = (e - q).norm(dim=1)
    shuffled = (e - q[torch.from_numpy(partner)]).norm(dim=1)
    def retrieval(rank):
        return {
            "acc@1": float((rank == 0).double().mean()),
            "acc@10": float((rank < 10).double().mean()),
            "mrr": float((1.0 / (rank.double() + 1)).mean()),
        }

    return {
        "n_items": n,
        "latent_dim": int(e.shape[1]),
        "variance": {
            "joint": {"mean": float(var_e.mean()), "min": float(var_e.min()), "max": float(var_e.max())},
            "text": {"mean": float(var_q.mean()), "min": float(var_q.min()), "max": float(var_q.max())},
        },
        "distance": {
            "matched_mean": float(matched.mean()),
            "shuffled_mean": float(shuffled.mean()),
            "matched_over_shuffled": float(matched.mean() / shuffled.mean()) if float(shuffled.mean()) > 0 else None,
        },
        "retrieval": {
            "text_to_joint": retrieval(_own_rank(q, e)),
            "joint_to_text": retrieval(_own_rank(e, q)),
            "chance_acc@1": 1.0 / n,
        },
        "shuffle_seed": seed,
    }


__all__ = [
    "compute_item_embeddings",
    "save_item_embeddings",
    "load_stage1_item_embeddings",
    "alignment_report",
    "ITEM_EMBEDDINGS_FILE",
    "ALIGNMENT_REPORT_FILE",
]
