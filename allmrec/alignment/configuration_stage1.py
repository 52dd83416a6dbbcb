"""Configuration of A-LLMRec stage 1 (collaborative ↔ text alignment, paper §4.1, Eq. 2–6)."""

from __future__ import annotations

from transformers import PretrainedConfig

from ..errors import AllmrecError

#: Paper Table 3: α = 0.5 everywhere; β = 0.5 for Movies and Video Games, 0.2 for Beauty and Toys.
PAPER_ALPHA = 0.5
PAPER_BETA_BY_DOMAIN = {"movie": 0.5, "game": 0.5, "item": 0.2}

ENCODER_ACTIVATIONS = ("sigmoid", "relu", "tanh", "gelu", "identity")
REC_SCORES = ("dot", "mean")
MATCH_LOSSES = ("mse", "infonce")
TRAIN_ITEMS = ("last", "all")


def paper_beta(domain: str) -> float:
    """β of paper Table 3 for a dataset domain (``movie``/``game`` → 0.5, Amazon ``item`` → 0.2)."""
    return PAPER_BETA_BY_DOMAIN.get(domain, PAPER_BETA_BY_DOMAIN["item"])


class Stage1Config(PretrainedConfig):
    r"""Hyper-parameters of the stage-1 alignment network.

    Args:
        cf_model_path (`str`, *optional*):
            The CF checkpoint directory whose item embeddings were aligned (stage 2 must use the same one).
        cf_model_type (`str`, *optional*):
            ``model_type`` of that CF checkpoint (sasrec, gru4rec, nextitnet, ncf); informational.
        item_dim (`int`, defaults to 50):
            d, the size of the CF model's item embeddings / user representations (paper Table 3: 50).
        latent_dim (`int`, defaults to 128):
            d', the output size of the item and text encoders (paper Table 3: 128).
        sbert_name_or_path (`str`, defaults to ``"sentence-transformers/nq-distilbert-base-v1"``):
            The sentence-transformers model the text path starts from (the official code's SBERT). The
            fine-tuned weights are saved in the checkpoint's ``sbert/`` folder.
        sbert_source (`dict`, *optional*):
            What exactly that SBERT was when ``sbert_name_or_path`` is the canonical Hub id of an offline ``allmrec``
            asset (asset name, file, sha256); provenance only.
        sbert_dim (`int`, defaults to 768):
            Output size of that SBERT; overwritten from the model when it is loaded (384 for all-MiniLM-L6-v2).
        sbert_max_seq_length (`int`, *optional*):
            Token limit for item texts; ``None`` keeps the SBERT model's own ``max_seq_length``.
        encoder_activation (`str`, defaults to ``"sigmoid"``):
            Non-linearity after the encoder's Linear. The official ``two_layer_mlp`` uses Sigmoid, so the joint
            embedding e_i lies in (0, 1)^d'. One of sigmoid, relu, tanh, gelu, identity.
        alpha (`float`, defaults to 0.5):
            Weight α of L_item-recon (Eq. 6; paper Table 3).
        beta (`float`, defaults to 0.5):
            Weight β of L_text-recon (Eq. 6; paper Table 3: 0.5 Movies/Video Games, 0.2 Beauty/Toys; the
            official code hard-codes 0.2).
        use_match_loss (`bool`, defaults to `True`): include L_matching (Eq. 2); Table 8 ablation when False.
        use_item_recon_loss (`bool`, defaults to `True`): include L_item-recon (Eq. 3).
        use_text_recon_loss (`bool`, defaults to `True`): include L_text-recon (Eq. 4).
        use_rec_loss (`bool`, defaults to `True`): include L_rec (Eq. 5).
        match_loss (`str`, defaults to ``"mse"``):
            ``mse`` = Eq. 2 (the paper); ``infonce`` = a symmetric contrastive loss over the distinct items of a
            step (not in the paper; see :func:`~allmrec.alignment.losses.contrastive_matching_loss`).
        match_temperature (`float`, defaults to 0.1):
            Temperature τ of the ``infonce`` matching loss (logits = −‖e_i − q_j‖² / τ).
        rec_score (`str`, defaults to ``"dot"``):
            Score s(x^u, ·) inside L_rec: ``dot`` = the dot product of Eq. 5; ``mean`` = mean over dimensions
            (dot / d), what the official code computes.
        train_items (`str`, defaults to ``"last"``):
            ``last`` = only each user's last training item (paper default); ``all`` = every item of the
            sequence (A-LLMRec_all, paper §5.4.2 / Table 10).
        sbert_train_layers (`int`, *optional*):
            ``None`` fine-tunes all of SBERT (paper default); ``0`` freezes it (Table 8 "Freeze SBERT"); ``N``
            fine-tunes only the top N transformer layers (lower layers frozen, their outputs cached).
        cf_dropout_bug (`bool`, defaults to `False`):
            Reproduce the official code's bug of computing x^u with the frozen CF model in train mode (dropout on).
    """

    model_type = "allmrec_stage1"

    def __init__(
        self,
        cf_model_path: str | None = None,
        cf_model_type: str | None = None,
        item_dim: int = 50,
        latent_dim: int = 128,
        sbert_name_or_path: str = "sentence-transformers/nq-distilbert-base-v1",
        sbert_dim: int = 768,
        sbert_max_seq_length: int | None = None,
        encoder_activation: str = "sigmoid",
        alpha: float = PAPER_ALPHA,
        beta: float = PAPER_BETA_BY_DOMAIN["movie"],
        use_match_loss: bool = True,
        use_item_recon_loss: bool = True,
        use_text_recon_loss: bool = True,
        use_rec_loss: bool = True,
        match_loss: str = "mse",
        match_temperature: float = 0.1,
        rec_score: str = "dot",
        train_items: str = "last",
        sbert_train_layers: int | None = None,
        cf_dropout_bug: bool = False,
        **kwargs,
    ):
        self.cf_model_path = cf_model_path
        self.cf_model_type = cf_model_type
        self.item_dim = int(item_dim)
        self.latent_dim = int(latent_dim)
        self.sbert_name_or_path = sbert_name_or_path
        self.sbert_dim = int(sbert_dim)
        self.sbert_max_seq_length = None if sbert_max_seq_length is None else int(sbert_max_seq_length)
        self.encoder_activation = encoder_activation
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.use_match_loss = bool(use_match_loss)
        self.use_item_recon_loss = bool(use_item_recon_loss)
        self.use_text_recon_loss = bool(use_text_recon_loss)
        self.use_rec_loss = bool(use_rec_loss)
        self.match_loss = match_loss
        self.match_temperature = float(match_temperature)
        self.rec_score = rec_score
        self.train_items = train_items
        self.sbert_train_layers = None if sbert_train_layers is None else int(sbert_train_layers)
        self.cf_dropout_bug = bool(cf_dropout_bug)
        self._validate()
        super().__init__(**kwargs)

    def _validate(self) -> None:
        def bad(field: str, value, what: str):
            raise AllmrecError(f"Stage1Config.{field}={value!r} is invalid: {what}")

        for name in ("item_dim", "latent_dim", "sbert_dim"):
            if getattr(self, name) <= 0:
                bad(name, getattr(self, name), "must be a positive integer")
        if self.sbert_max_seq_length is not None and self.sbert_max_seq_length <= 0:
            bad("sbert_max_seq_length", self.sbert_max_seq_length, "must be positive or None")
        if self.encoder_activation not in ENCODER_ACTIVATIONS:
            bad("encoder_activation", self.encoder_activation, f"choose one of {', '.join(ENCODER_ACTIVATIONS)}")
        if self.match_loss not in MATCH_LOSSES:
            bad("match_loss", self.match_loss, f"choose one of {', '.join(MATCH_LOSSES)}")
        if self.match_temperature <= 0:
            bad("match_temperature", self.match_temperature, "must be positive")
        if self.rec_score not in REC_SCORES:
            bad("rec_score", self.rec_score, f"choose one of {', '.join(REC_SCORES)}")
        if self.train_items not in TRAIN_ITEMS:
            bad("train_items", self.train_items, f"choose one of {', '.join(TRAIN_ITEMS)}")
        for name in ("alpha", "beta"):
            if getattr(self, name) < 0:
                bad(name, getattr(self, name), "loss weights must be >= 0")
        if self.sbert_train_layers is not None and self.sbert_train_layers < 0:
            bad("sbert_train_layers", self.sbert_train_layers, "use None (all layers), 0 (frozen) or N > 0")
        if not any(self.active_losses.values()):
            raise AllmrecError("Stage1Config: every loss is disabled; keep at least one of match/item-recon/text-recon/rec")

    @property
    def active_losses(self) -> dict[str, bool]:
        return {
            "match": self.use_match_loss,
            "item_recon": self.use_item_recon_loss,
            "text_recon": self.use_text_recon_loss,
            "rec": self.use_rec_loss,
        }

    @property
    def uses_text(self) -> bool:
        """Whether any loss reads the text path (if not, SBERT and f_T are never run in training)."""
        return self.use_match_loss or self.use_text_recon_loss

    @property
    def sbert_frozen(self) -> bool:
        return self.sbert_train_layers == 0


__all__ = ["Stage1Config", "paper_beta", "PAPER_ALPHA", "PAPER_BETA_BY_DOMAIN", "ENCODER_ACTIVATIONS", "REC_SCORES", "MATCH_LOSSES"]
