"""NCF / NeuMF (He et al., WWW 2017): a non-sequential two-tower baseline over user ids.

Both towers hold a GMF part and an MLP part:

    user representation  x^u = [p^GMF_u ; p^MLP_u]                    (d = gmf + mlp dims)
    item embedding       E_i = [q^GMF_i ; q^MLP_i]
    score(u, i)          = w^T [p^GMF_u ⊙ q^GMF_i ; MLP([p^MLP_u ; q^MLP_i])]

So the CF interface still hands A-LLMRec one d-dimensional vector per user and per item, and
``score`` is NeuMF's own prediction (not a dot product). The user representation depends on the
**user id**, not the history: users never seen in training (cold users, whose ids come after the
training users) all map to row 0, which is never trained — exactly the weakness the cold-user
scenario is meant to expose.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig

try:  # inside the allmrec package
    from allmrec.errors import AllmrecError
except ImportError:  # shipped as Hub remote code next to an A-LLMRec checkpoint, without allmrec
    AllmrecError = ValueError
from .base import CFModelOutput, CFPreTrainedModel, require_config
from .losses import bce_loss, check_loss_type, full_softmax_ce_loss


class NCFConfig(PretrainedConfig):
    r"""Configuration of :class:`NCFModel`.

    Args:
        num_users (`int`): number of training users; ids ``1..num_users``. Row 0 stands for every
            user outside that range (never trained).
        num_items (`int`): number of items; ids ``1..num_items``, 0 is padding.
        hidden_size (`int`, defaults to 50): size d of user/item vectors; split into a GMF part
            (``hidden_size // 2``) and an MLP part (the rest).
        mlp_hidden_sizes (`list[int]`, defaults to ``[50, 25]``): widths of the MLP tower's ReLU
            layers on top of ``[p^MLP_u ; q^MLP_i]`` (a halving tower as in the NCF paper).
        dropout_rate (`float`, defaults to 0.0): dropout between MLP layers (paper: none).
        maxlen (`int`, defaults to 50): length of the history tensors callers pass; NCF ignores
            the history itself.
        loss_type (`str`, defaults to ``"bce"``): ``bce`` (NCF's log loss with sampled
            negatives) or ``ce`` (full softmax over items).
    """

    model_type = "ncf"

    def __init__(
        self,
        num_users: int = 0,
        num_items: int = 0,
        hidden_size: int = 50,
        mlp_hidden_sizes: list[int] | tuple[int, ...] = (50, 25),
        dropout_rate: float = 0.0,
        maxlen: int = 50,
        loss_type: str = "bce",
        **kwargs,
    ):
        name = type(self).__name__
        mlp_hidden_sizes = [int(h) for h in mlp_hidden_sizes]
        require_config(num_users >= 0 and num_items >= 0, name, "num_users and num_items must be >= 0")
        require_config(hidden_size >= 2, name, f"hidden_size must be >= 2 (GMF + MLP parts), got {hidden_size}")
        require_config(len(mlp_hidden_sizes) > 0 and all(h > 0 for h in mlp_hidden_sizes), name,
                       f"mlp_hidden_sizes must be a non-empty list of positive ints, got {mlp_hidden_sizes}")
        require_config(0.0 <= dropout_rate < 1.0, name, f"dropout_rate must be in [0, 1), got {dropout_rate}")
        self.num_users = int(num_users)
        self.num_items = int(num_items)
        self.hidden_size = int(hidden_size)
        self.mlp_hidden_sizes = mlp_hidden_sizes
        self.dropout_rate = float(dropout_rate)
        self.maxlen = int(maxlen)
        self.loss_type = check_loss_type(loss_type)
        super().__init__(**kwargs)

    @property
    def gmf_size(self) -> int:
        return self.hidden_size // 2

    @property
    def mlp_embedding_size(self) -> int:
        return self.hidden_size - self.hidden_size // 2


class NCFModel(CFPreTrainedModel):
    """NeuMF; see the module docstring. Trained on (user, item) pairs, not sequences."""

    config_class = NCFConfig
    main_input_name = "user_ids"
    training_input = "pointwise"

    def __init__(self, config: NCFConfig):
        super().__init__(config)
        require_config(config.num_users > 0 and config.num_items > 0, "NCFConfig",
                       "num_users and num_items must be set (> 0) to build a model")
        g, m = config.gmf_size, config.mlp_embedding_size
        self.user_emb = nn.Embedding(config.num_users + 1, g + m)
        self.item_emb = nn.Embedding(config.num_items + 1, g + m, padding_idx=0)
        layers: list[nn.Module] = []
        width = 2 * m
        for h in config.mlp_hidden_sizes:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(config.dropout_rate)]
            width = h
        self.mlp = nn.Sequential(*layers)
        self.predict = nn.Linear(g + width, 1)
        self.post_init()

    # ----------------------------------------------------------------- scoring
    def _pair_scores(self, u: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """NeuMF head on broadcastable ``u`` ``(..., d)`` and ``e`` ``(..., d)`` → ``(...)``."""
        g = self.config.gmf_size
        u, e = torch.broadcast_tensors(u, e)
        gmf = u[..., :g] * e[..., :g]
        mlp = self.mlp(torch.cat([u[..., g:], e[..., g:]], dim=-1))
        return self.predict(torch.cat([gmf, mlp], dim=-1)).squeeze(-1)

    def _user_vectors(self, user_ids: torch.LongTensor | None) -> torch.Tensor:
        if user_ids is None:
            raise AllmrecError("NCF scores by user id: pass user_ids (it does not read the history)")
        user_ids = torch.as_tensor(user_ids, device=self.device, dtype=torch.long).reshape(-1)
        if user_ids.numel() and int(user_ids.min()) < 0:
            raise AllmrecError("NCF: user ids must be >= 0")
        # Users the model never saw (e.g. cold_user_test ids, numbered after the training users)
        # share row 0, which training never touches: NCF has nothing to say about them, and the
        # cold-user scenario should show exactly that.
        user_ids = torch.where(user_ids > self.config.num_users, torch.zeros_like(user_ids), user_ids)
        return self.user_emb(user_ids)

    def forward(
        self,
        user_ids: torch.LongTensor,
        positive_ids: torch.LongTensor | None = None,
        negative_ids: torch.LongTensor | None = None,
        **kwargs,
    ) -> CFModelOutput:
        """``user_ids`` ``(B,)``; with ``positive_ids`` ``(B,)`` the loss is computed (BCE needs
        ``negative_ids`` ``(B,)`` or ``(B, K)``; CE scores all items)."""
        u = self._user_vectors(user_ids)
        loss = None
        if positive_ids is not None:
            positive_ids = positive_ids.to(u.device).reshape(-1)
            if self.config.loss_type == "ce":
                item_logits = self._pair_scores(u.unsqueeze(1), self.item_emb.weight[1:].unsqueeze(0))
                loss = full_softmax_ce_loss(item_logits, positive_ids)
            else:
                if negative_ids is None:
                    raise ValueError("BCE training needs negative_ids")
                negative_ids = negative_ids.to(u.device).reshape(len(positive_ids), -1)
                pos = self._pair_scores(u, self.item_emb(positive_ids))
                neg = self._pair_scores(u.unsqueeze(1), self.item_emb(negative_ids))
                loss = bce_loss(pos, neg, positive_ids != 0)
        return CFModelOutput(loss=loss, last_hidden_state=u)

    # ----------------------------------------------------------------- CF interface
    def user_representation(self, item_seq: torch.LongTensor | None, user_ids: torch.LongTensor | None = None) -> torch.Tensor:
        """``[p^GMF_u ; p^MLP_u]`` of the given users, ``(B, d)``; ``item_seq`` is ignored."""
        return self._user_vectors(user_ids)

    def item_embeddings(self, item_ids: torch.LongTensor) -> torch.Tensor:
        return self.item_emb(item_ids.to(self.item_emb.weight.device))

    def score(self, item_seq, items: torch.LongTensor, user_ids: torch.LongTensor | None = None) -> torch.Tensor:
        u = self.user_representation(item_seq, user_ids)
        return self._pair_scores(u.unsqueeze(1), self.item_embeddings(items))

    def score_all_items(self, item_seq, user_ids: torch.LongTensor | None = None, item_chunk: int = 4096) -> torch.Tensor:
        """NeuMF scores of every item; the MLP runs on (users × items) pairs, so items go in
        chunks to keep memory at ``B · item_chunk · d`` on large catalogues."""
        u = self.user_representation(item_seq, user_ids).unsqueeze(1)
        table = self.item_emb.weight
        return torch.cat([self._pair_scores(u, table[i:i + item_chunk].unsqueeze(0))
                          for i in range(0, table.shape[0], item_chunk)], dim=1)

    def get_input_embeddings(self):
        return self.item_emb

    def set_input_embeddings(self, value):
        self.item_emb = value


# Registered on import, so `AutoModel.from_pretrained(dir)` works as soon as the class is importable.
AutoConfig.register(NCFConfig.model_type, NCFConfig, exist_ok=True)
AutoModel.register(NCFConfig, NCFModel, exist_ok=True)


__all__ = ["NCFConfig", "NCFModel"]
