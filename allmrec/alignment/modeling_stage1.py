"""A-LLMRec stage 1: item and text autoencoders aligned in a shared latent space (paper §4.1).

``e_i = f_I^enc(E_i)`` (the *joint collaborative-text embedding* stage 2 feeds to the LLM) and
``q_i = f_T^enc(SBERT(text_i))`` (the text path for items the CF model never saw) are trained with

    L_stage-1 = L_matching + α·L_item-recon + β·L_text-recon + L_rec          (Eq. 6)

Checkpoint layout (``save_pretrained``)::

    DIR/config.json          Stage1Config (records cf_model_path, latent_dim, loss settings, ...)
    DIR/model.safetensors    the two autoencoders only
    DIR/sbert/               the fine-tuned SentenceTransformer (``SentenceTransformer.save``)

``ALLMRecStage1Model.from_pretrained(DIR)`` restores both. SBERT is attached *after* the transformers
weight loading, so the library's meta-device init and missing-key initialisation never touch it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as hf_init
from transformers.utils import ModelOutput

from ..errors import CheckpointError
from ..utils.logging import get_logger
from .configuration_stage1 import Stage1Config
from .losses import contrastive_matching_loss, matching_loss, reconstruction_loss, recommendation_loss
from .sbert import embedding_dimension, tokenize, top_layers_only

logger = get_logger(__name__)

SBERT_SUBFOLDER = "sbert"

_ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "identity": nn.Identity}


class Autoencoder(nn.Module):
    """One-hidden-layer autoencoder: encoder = Linear + activation (the official ``two_layer_mlp`` uses
    Sigmoid, so latents lie in (0, 1)), decoder = Linear."""

    def __init__(self, input_dim: int, latent_dim: int, activation: str = "sigmoid"):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(input_dim, latent_dim), _ACTIVATIONS[activation]())
        self.decoder = nn.Linear(latent_dim, input_dim)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        return z, self.decoder(z)


@dataclass
class Stage1Output(ModelOutput):
    """Total loss and each term *unweighted* (a disabled term is ``None`` and adds nothing)."""

    loss: torch.Tensor | None = None
    loss_match: torch.Tensor | None = None
    loss_item_recon: torch.Tensor | None = None
    loss_text_recon: torch.Tensor | None = None
    loss_rec: torch.Tensor | None = None
    pos_joint: torch.Tensor | None = None  # e of the positive items, (R, d')
    pos_text: torch.Tensor | None = None  # q of the positive items, (R, d') (None when text is unused)


class ALLMRecStage1PreTrainedModel(PreTrainedModel):
    config_class = Stage1Config
    base_model_prefix = "stage1"
    main_input_name = "pos_item_embeddings"
    _keys_to_ignore_on_load_unexpected = [r"^sbert\."]

    def _init_weights(self, module: nn.Module) -> None:
        # The official code keeps PyTorch's default Linear init (nn.Linear.reset_parameters: Kaiming-uniform
        # with a=√5, bias U(±1/√fan_in)), not transformers' normal(0, 0.02). The transformers.initialization
        # functions skip tensors already loaded from a checkpoint.
        if isinstance(module, nn.Linear):
            hf_init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                bound = 1.0 / math.sqrt(module.weight.shape[1])
                hf_init.uniform_(module.bias, -bound, bound)


class ALLMRecStage1Model(ALLMRecStage1PreTrainedModel):
    """Item autoencoder f_I (d → d' → d), text autoencoder f_T (sbert_dim → d' → sbert_dim) and the SBERT
    that produces Q_i. Without an attached SBERT the model still works on precomputed text embeddings."""

    def __init__(self, config: Stage1Config, sbert=None):
        super().__init__(config)
        self.item_autoencoder = Autoencoder(config.item_dim, config.latent_dim, config.encoder_activation)
        self.text_autoencoder = Autoencoder(config.sbert_dim, config.latent_dim, config.encoder_activation)
        self.post_init()
        self.sbert = None
        if sbert is not None:
            self.attach_sbert(sbert)

    # ------------------------------------------------------------------ SBERT
    def attach_sbert(self, sbert) -> None:
        dim = embedding_dimension(sbert)
        if dim != self.config.sbert_dim:
            raise CheckpointError(
                f"SBERT outputs {dim}-d embeddings but this stage-1 model expects sbert_dim={self.config.sbert_dim}; "
                "build the config from the same SBERT"
            )
        if self.config.sbert_max_seq_length is not None:
            sbert.max_seq_length = self.config.sbert_max_seq_length
        self.sbert = sbert.to(self.device)

    def embed_texts(self, text_features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Q for a batch of tokenised item texts ``(U, sbert_dim)``. With ``cached_hidden_states`` in the
        features only SBERT's top ``config.sbert_train_layers`` layers run (lower layers' output cached)."""
        if self.sbert is None:
            raise CheckpointError("this stage-1 model has no SBERT attached; load it with from_pretrained(dir) or pass text_embeddings")
        feats = dict(text_features)
        cached = feats.pop("cached_hidden_states", None)
        if cached is None:
            return self.sbert(feats)["sentence_embedding"]
        n = self.config.sbert_train_layers
        if not n:
            raise ValueError("cached_hidden_states were given but config.sbert_train_layers is not a positive N")
        # The cache may be stored in half precision; the layers cast under autocast, but not without it.
        cached = cached.to(dtype=next(self.sbert.parameters()).dtype)
        with top_layers_only(self.sbert, n, cached):
            return self.sbert(feats)["sentence_embedding"]

    # ------------------------------------------------------------------ encoders
    def encode_items(self, item_embeddings: torch.Tensor) -> torch.Tensor:
        """e = f_I^enc(E): the joint collaborative-text embedding."""
        return self.item_autoencoder.encode(item_embeddings)

    def encode_text_embeddings(self, text_embeddings: torch.Tensor) -> torch.Tensor:
        """q = f_T^enc(Q)."""
        return self.text_autoencoder.encode(text_embeddings)

    @torch.no_grad()
    def encode_texts(self, texts: list[str], batch_size: int = 128) -> torch.Tensor:
        """q for raw item texts (eval mode, no grad), e.g. for items the CF model has never seen."""
        if self.sbert is None:
            raise CheckpointError("this stage-1 model has no SBERT attached; load it with from_pretrained(dir)")
        was_training = self.training
        self.eval()
        try:
            out = []
            for start in range(0, len(texts), batch_size):
                feats = tokenize(self.sbert, texts[start:start + batch_size])
                feats = {k: v.to(self.device) for k, v in feats.items() if isinstance(v, torch.Tensor)}
                out.append(self.encode_text_embeddings(self.embed_texts(feats)).float())
            return torch.cat(out) if out else torch.zeros(0, self.config.latent_dim, device=self.device)
        finally:
            self.train(was_training)

    # ------------------------------------------------------------------ loss
    def forward(
        self,
        user_representation: torch.Tensor,
        pos_item_embeddings: torch.Tensor,
        neg_item_embeddings: torch.Tensor,
        text_features: dict[str, torch.Tensor] | None = None,
        text_embeddings: torch.Tensor | None = None,
        pos_text_index: torch.Tensor | None = None,
        neg_text_index: torch.Tensor | None = None,
    ) -> Stage1Output:
        """Stage-1 loss for R rows (user, positive item, negative item).

        Args:
            user_representation: x^u ``(R, d)`` from the frozen CF model.
            pos_item_embeddings / neg_item_embeddings: E of the positive / negative item ``(R, d)``.
            text_features: tokenised texts of the U *distinct* items of the step (each encoded once), or
            text_embeddings: their precomputed SBERT embeddings Q ``(U, sbert_dim)`` (frozen SBERT).
            pos_text_index / neg_text_index: ``(R,)`` row of each positive / negative item among the U.
        """
        cfg = self.config
        pos_joint, pos_item_recon = self.item_autoencoder(pos_item_embeddings)
        neg_joint, neg_item_recon = self.item_autoencoder(neg_item_embeddings)

        pos_text = neg_text = None
        loss_match = loss_text_recon = None
        if cfg.uses_text:
            if text_embeddings is None:
                if text_features is None:
                    raise ValueError("the matching / text-recon losses need text_features or text_embeddings")
                text_embeddings = self.embed_texts(text_features)
            if pos_text_index is None or neg_text_index is None:
                raise ValueError("pos_text_index and neg_text_index are required with text inputs")
            # f_T runs once per distinct item; rows gather from it (same values and gradients as per row).
            text_latent, text_recon = self.text_autoencoder(text_embeddings)
            pos_text, neg_text = text_latent[pos_text_index], text_latent[neg_text_index]
            if cfg.use_match_loss:
                if cfg.match_loss == "mse":
                    loss_match = matching_loss(pos_joint, pos_text) + matching_loss(neg_joint, neg_text)
                else:
                    loss_match = contrastive_matching_loss(
                        _per_unique(torch.cat([pos_joint, neg_joint]), torch.cat([pos_text_index, neg_text_index]), len(text_latent)),
                        text_latent, cfg.match_temperature,
                    )
            if cfg.use_text_recon_loss:
                loss_text_recon = reconstruction_loss(
                    text_recon[pos_text_index], text_embeddings[pos_text_index], detach_target=True
                ) + reconstruction_loss(text_recon[neg_text_index], text_embeddings[neg_text_index], detach_target=True)

        loss_item_recon = loss_rec = None
        if cfg.use_item_recon_loss:
            loss_item_recon = reconstruction_loss(pos_item_recon, pos_item_embeddings) + reconstruction_loss(
                neg_item_recon, neg_item_embeddings
            )
        if cfg.use_rec_loss:
            loss_rec = recommendation_loss(user_representation, pos_item_recon, neg_item_recon, cfg.rec_score)

        terms = [loss_match, loss_rec]
        if loss_item_recon is not None:
            terms.append(cfg.alpha * loss_item_recon)
        if loss_text_recon is not None:
            terms.append(cfg.beta * loss_text_recon)
        loss = sum(t for t in terms if t is not None)
        return Stage1Output(
            loss=loss,
            loss_match=loss_match,
            loss_item_recon=loss_item_recon,
            loss_text_recon=loss_text_recon,
            loss_rec=loss_rec,
            pos_joint=pos_joint,
            pos_text=pos_text,
        )

    # ------------------------------------------------------------------ save / load
    def save_pretrained(self, save_directory, *args, **kwargs):
        """Autoencoders → ``model.safetensors``; the fine-tuned SBERT → ``sbert/`` (its own format)."""
        kwargs.setdefault("state_dict", {k: v for k, v in self.state_dict().items() if not k.startswith("sbert.")})
        result = super().save_pretrained(save_directory, *args, **kwargs)
        if self.sbert is not None and kwargs.get("is_main_process", True):
            self.sbert.save(str(Path(save_directory) / SBERT_SUBFOLDER))
        return result

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, load_sbert: bool = True, **kwargs):
        """Load the autoencoders and (``load_sbert``) the fine-tuned SBERT saved beside them."""
        model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        if load_sbert:
            from .sbert import load_sbert as _load_sbert

            sbert_dir = _sbert_folder(pretrained_model_name_or_path, kwargs)
            model.attach_sbert(_load_sbert(str(sbert_dir), max_seq_length=model.config.sbert_max_seq_length))
        return model


def _per_unique(rows: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """``(n, d)``: for each distinct item, the row of its first occurrence (duplicates are identical)."""
    position = torch.arange(len(index), device=index.device)
    first = torch.full((n,), len(index), dtype=torch.long, device=index.device).scatter_reduce(0, index, position, "amin")
    if bool((first == len(index)).any()):
        raise ValueError("every text embedding row must belong to a positive or negative item of the step")
    return rows[first]


def _sbert_folder(name_or_path, kwargs) -> Path:
    local = Path(str(name_or_path))
    if local.is_dir():
        folder = local / SBERT_SUBFOLDER
    else:  # a Hub repository: fetch only the sbert/ files
        from huggingface_hub import snapshot_download

        root = snapshot_download(
            str(name_or_path), allow_patterns=[f"{SBERT_SUBFOLDER}/*", f"{SBERT_SUBFOLDER}/**"],
            revision=kwargs.get("revision"), token=kwargs.get("token"),
        )
        folder = Path(root) / SBERT_SUBFOLDER
    if not (folder / "modules.json").is_file():
        raise CheckpointError(
            f"{folder} holds no fine-tuned SBERT (modules.json missing); the stage-1 checkpoint is incomplete — "
            "re-run `allmrec train stage1`, or load with load_sbert=False to use only the autoencoders"
        )
    return folder


__all__ = ["ALLMRecStage1Model", "ALLMRecStage1PreTrainedModel", "Autoencoder", "Stage1Output", "SBERT_SUBFOLDER"]
