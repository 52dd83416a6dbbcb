"""SBERT plumbing for stage 1: loading, partial freezing, and running only the top N layers.

Fine-tuning SBERT is what makes stage 1 slow (official issue #13: "dozens of days"). Besides batching
and encoding each distinct item once per step, users asked to fine-tune only the top N transformer
layers. The frozen lower layers then compute the same thing at every step, so their output (the
hidden states entering layer ``L - N``) is computed once per item and cached; a training step runs
only the top N layers on the cached states.

Running "only the top N layers" reuses the model's own ``forward`` (attention-mask building, relative
position bias, pooling, normalisation all stay the library's code): inside :func:`top_layers_only` the
embedding module is temporarily replaced by one that returns the cached hidden states, and the layer
list by its top-N slice. Parameters are shared, so gradients reach the real layers and the saved SBERT
is always the full model. This works for encoder models that expose ``.embeddings`` and a layer
``ModuleList`` (BERT/MiniLM, DistilBERT, MPNet, RoBERTa, ...).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from ..assets import resolve_sbert
from ..errors import AllmrecError, AssetError

# Where encoder models keep their stack of transformer layers (owner path, attribute name).
_LAYER_LIST_PATHS = (("encoder", "layer"), ("transformer", "layer"), ("encoder", "layers"), ("", "layers"), ("", "layer"))


def load_sbert(name_or_path: str, max_seq_length: int | None = None, device: str | torch.device = "cpu"):
    """Load a sentence-transformers model by short name (``all-minilm-l6-v2``), Hub id or local path."""
    from sentence_transformers import SentenceTransformer

    resolved = resolve_sbert(name_or_path)
    try:
        model = SentenceTransformer(resolved, device=str(device))
    except (OSError, ValueError) as e:
        raise AssetError(
            f"could not load the SBERT model '{name_or_path}' ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
            "offline, pass --sbert all-minilm-l6-v2 (bundled) or a local sentence-transformers folder"
        ) from e
    if max_seq_length is not None:
        model.max_seq_length = int(max_seq_length)
    return model


def tokenize(sbert, texts: list[str]) -> dict:
    """``sbert.preprocess`` (sentence-transformers >= 6; ``tokenize`` before, deprecated since)."""
    fn = getattr(sbert, "preprocess", None) or sbert.tokenize
    return fn(list(texts))


def embedding_dimension(sbert) -> int:
    """``get_embedding_dimension`` (sentence-transformers >= 6) or its older name."""
    fn = getattr(sbert, "get_embedding_dimension", None) or sbert.get_sentence_embedding_dimension
    return int(fn())


@dataclass
class TransformerParts:
    """The pieces of SBERT's first module that top-N fine-tuning needs."""

    hf_model: nn.Module  # the transformers model inside sentence-transformers' Transformer module
    layer_owner: nn.Module  # module holding the layer list as an attribute
    layer_attr: str
    layers: nn.ModuleList

    @property
    def num_layers(self) -> int:
        return len(self.layers)


def transformer_parts(sbert) -> TransformerParts:
    first = sbert[0]
    hf_model = getattr(first, "auto_model", None) or getattr(first, "model", None)
    if hf_model is None or not hasattr(hf_model, "embeddings"):
        raise AllmrecError(
            f"--sbert-train-layers needs an encoder SBERT with `.embeddings` (BERT, DistilBERT, MPNet, RoBERTa); "
            f"{type(first).__name__} has none: fine-tune all layers or pass --freeze-sbert"
        )
    for owner_name, attr in _LAYER_LIST_PATHS:
        owner = getattr(hf_model, owner_name) if owner_name else hf_model
        layers = getattr(owner, attr, None) if owner is not None else None
        if isinstance(layers, nn.ModuleList) and len(layers) > 0:
            return TransformerParts(hf_model, owner, attr, layers)
    raise AllmrecError(
        f"cannot find the transformer layer list of {type(hf_model).__name__}; --sbert-train-layers supports BERT-like "
        "encoders only: fine-tune all layers or pass --freeze-sbert"
    )


def configure_trainable_layers(sbert, train_layers: int | None) -> None:
    """``None``: everything trainable; ``0``: everything frozen; ``N``: only the top N transformer layers
    and the modules after the transformer (pooling/dense) are trainable."""
    if train_layers is None:
        sbert.requires_grad_(True)
        return
    sbert.requires_grad_(False)
    if train_layers == 0:
        return
    parts = transformer_parts(sbert)
    if train_layers > parts.num_layers:
        raise AllmrecError(
            f"--sbert-train-layers {train_layers} exceeds the {parts.num_layers} layers of this SBERT; "
            "omit the flag to fine-tune all of it"
        )
    for layer in parts.layers[parts.num_layers - train_layers:]:
        layer.requires_grad_(True)
    for module in list(sbert)[1:]:  # pooling / dense / normalize: trained as in full fine-tuning
        module.requires_grad_(True)


class _CachedHiddenStates(nn.Module):
    """Stands in for the embedding module: returns precomputed hidden states, whatever it is called with."""

    def __init__(self, hidden_states: torch.Tensor):
        super().__init__()
        self.hidden_states = hidden_states

    def forward(self, *args, **kwargs) -> torch.Tensor:
        return self.hidden_states


@contextlib.contextmanager
def top_layers_only(sbert, num_layers: int, hidden_states: torch.Tensor):
    """Within the block, SBERT's forward starts at layer ``L - num_layers`` from ``hidden_states``."""
    parts = transformer_parts(sbert)
    embeddings = parts.hf_model.embeddings
    full_layers = parts.layers
    # Assigning through nn.Module.__setattr__ swaps registered children; restored in `finally`.
    parts.hf_model.embeddings = _CachedHiddenStates(hidden_states)
    setattr(parts.layer_owner, parts.layer_attr, full_layers[len(full_layers) - num_layers:])
    try:
        yield
    finally:
        parts.hf_model.embeddings = embeddings
        setattr(parts.layer_owner, parts.layer_attr, full_layers)


class ItemTextInputs:
    """Every catalogue item's text, tokenised once, served as padded features for any set of item ids.

    With ``cached_from_layer`` set (top-N fine-tuning), the hidden states entering that layer are also
    computed once per item (frozen lower layers, eval mode, no grad) and served as
    ``cached_hidden_states``. Storage is ragged (no padding): ``total_tokens × hidden × dtype`` bytes.
    """

    def __init__(
        self,
        sbert,
        texts: list[str],
        cached_from_layer: int | None = None,
        batch_size: int = 256,
        cache_dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
        show_progress: bool = False,
    ):
        self.num_texts = len(texts)
        self.pad_token_id = int(getattr(sbert.tokenizer, "pad_token_id", 0) or 0)
        ids, types, lengths = [], [], []
        for start in range(0, len(texts), batch_size):
            feats = tokenize(sbert, texts[start:start + batch_size])
            mask = feats["attention_mask"].bool()
            for row in range(mask.shape[0]):
                ids.append(feats["input_ids"][row][mask[row]])
                if "token_type_ids" in feats:
                    types.append(feats["token_type_ids"][row][mask[row]])
                lengths.append(int(mask[row].sum()))
        self.lengths = torch.tensor(lengths, dtype=torch.long)
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.long), self.lengths.cumsum(0)])
        self.input_ids = torch.cat(ids).long()
        self.token_type_ids = torch.cat(types).long() if types else None
        self.cached_from_layer = cached_from_layer
        self.hidden_states: torch.Tensor | None = None
        if cached_from_layer is not None:
            self.hidden_states = self._compute_hidden_states(sbert, cached_from_layer, batch_size, cache_dtype, device, show_progress)

    # ------------------------------------------------------------------ batching
    def _pad(self, flat: torch.Tensor, item_ids: torch.Tensor, fill) -> torch.Tensor:
        lengths = self.lengths[item_ids]
        width = int(lengths.max()) if len(item_ids) else 0
        out = flat.new_full((len(item_ids), width, *flat.shape[1:]), fill)
        for row, item in enumerate(item_ids.tolist()):
            start, end = int(self.offsets[item]), int(self.offsets[item + 1])
            out[row, : end - start] = flat[start:end]
        return out

    def features(self, item_ids: torch.Tensor, with_cache: bool = True) -> dict[str, torch.Tensor]:
        """Right-padded ``input_ids``/``attention_mask`` (+ ``token_type_ids``, + ``cached_hidden_states``)
        for ``item_ids`` (1-D, any order; duplicates allowed)."""
        item_ids = torch.as_tensor(item_ids, dtype=torch.long).cpu()
        lengths = self.lengths[item_ids]
        width = int(lengths.max()) if len(item_ids) else 0
        feats = {
            "input_ids": self._pad(self.input_ids, item_ids, self.pad_token_id),
            "attention_mask": (torch.arange(width)[None, :] < lengths[:, None]).long(),
        }
        if self.token_type_ids is not None:
            feats["token_type_ids"] = self._pad(self.token_type_ids, item_ids, 0)
        if with_cache and self.hidden_states is not None:
            feats["cached_hidden_states"] = self._pad(self.hidden_states, item_ids, 0.0)
        return feats

    def length_sorted_batches(self, item_ids: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
        """Chunks of ``item_ids`` grouped by token length, so padding is minimal when encoding many items."""
        item_ids = torch.as_tensor(item_ids, dtype=torch.long)
        order = torch.argsort(self.lengths[item_ids], stable=True)
        return [item_ids[order[i:i + batch_size]] for i in range(0, len(order), batch_size)]

    # ------------------------------------------------------------------ cache
    @torch.no_grad()
    def _compute_hidden_states(self, sbert, layer: int, batch_size, dtype, device, show_progress) -> torch.Tensor:
        from tqdm.auto import tqdm

        parts = transformer_parts(sbert)
        hf_model = parts.hf_model
        was_training = hf_model.training
        hf_model.eval()  # frozen lower layers run deterministically: their output is the same every step
        out = torch.empty((int(self.offsets[-1]), hf_model.config.hidden_size), dtype=dtype)
        batches = self.length_sorted_batches(torch.arange(self.num_texts), batch_size)
        try:
            for chunk in tqdm(batches, desc=f"caching SBERT layers < {layer}", disable=not show_progress, leave=False):
                feats = self.features(chunk, with_cache=False)
                feats = {k: v.to(device) for k, v in feats.items()}
                hidden = hf_model(**feats, output_hidden_states=True).hidden_states[layer]
                hidden = hidden.to("cpu", dtype)
                for row, item in enumerate(chunk.tolist()):
                    start, end = int(self.offsets[item]), int(self.offsets[item + 1])
                    out[start:end] = hidden[row, : end - start]
        finally:
            hf_model.train(was_training)
        return out

    @property
    def cache_bytes(self) -> int:
        return 0 if self.hidden_states is None else self.hidden_states.numel() * self.hidden_states.element_size()


__all__ = [
    "load_sbert",
    "tokenize",
    "embedding_dimension",
    "transformer_parts",
    "configure_trainable_layers",
    "top_layers_only",
    "ItemTextInputs",
    "TransformerParts",
]
