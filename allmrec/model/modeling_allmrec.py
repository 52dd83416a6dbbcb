"""A-LLMRec stage 2 (Kim et al., KDD 2024, §4.2): a frozen causal LLM that reads a CF user representation and
stage-1 item embeddings as soft tokens.

Importable with only torch, transformers and the sibling files (it ships as Hub remote code);
``allmrec`` is used when installed (asset names, CF model registration, error classes), never required.

What the model holds
    * ``llm``: the frozen causal LM (``requires_grad_(False)``, always in eval mode). Built **once**, passed
      in or loaded from ``config.llm_name_or_path``; its weights are **never** written to a checkpoint
      (``save_pretrained`` filters every ``llm.*`` tensor out explicitly: ``_keys_to_ignore_on_save`` only
      matches exact keys in transformers 5.x).
    * ``user_projector`` F_U: Linear(d→H)–LayerNorm–LeakyReLU–Linear(H→H) and ``item_projector`` F_I:
      Linear(d'→H)–LayerNorm–GELU–Linear(H→H), xavier-normal weights as in the official code. The only
      trainable parameters.
    * ``cf_model``: the frozen CF recommender (e.g. SASRec) that turns an item history into x^u. Saved with
      the checkpoint (a few hundred KB), rebuilt from ``config.cf_config``, so a checkpoint scores any user
      from an item history on its own. ``user_embeds=`` bypasses it (precomputed x^u).
    * buffers ``item_joint`` (e_i = f_I^enc(E_i)), ``item_text`` (q_i = f_T^enc(SBERT(text_i))) and
      ``item_train_count`` (for ``item_embedding="auto"``): stage 1's frozen outputs, stored in the checkpoint
      instead of the stage-1 encoders (they are all F_I ever reads).
    * the item catalogue (titles by id), written as ``item_catalogue.json`` beside the weights.

Placeholders and splicing
    The prompt text contains ``[UserRep]``, ``[HistoryEmb]``, ``[CandidateEmb]``; they are single tokenizer
    tokens (``processing_allmrec``: added to the tokenizer, ids usually ≥ the LLM vocabulary; the LLM's
    embedding matrix is never resized). :meth:`embed_prompt` replaces those ids by a safe id before the
    embedding lookup, then writes O_u = F_U(x^u) and O_i = F_I(e_i) into their positions with one
    ``masked_scatter`` each, after checking per row that the number of placeholders equals the number of
    vectors (``ValueError`` otherwise). No Python loop over tokens. The user token is the first text
    token: after a BOS when the tokenizer adds one (the official code puts O_u before BOS; a BOS at
    position 0 is what every pretrained LM has seen).

Scoring (both in ``llm_scoring``, shared with the text-only baselines)
    * :meth:`generate_answers`: left-padded batch, ``llm.generate(inputs_embeds=...)`` greedy with the
      configured repetition penalty; returns only the new tokens.
    * :meth:`score_candidates`: log-likelihood of each candidate's answer (quoted title + EOS), either in one
      packed forward pass over the prompt and all C answers (``rank_scoring="packed"``, block attention mask) or
      with the prompt's KV cache repeated for the C candidates (``"cache"``).
      ``config.rank_normalization`` picks sum (default) or mean over the continuation tokens.

Training loss (``config.train_objective``)
    ``listwise`` / ``token+listwise``: the packed pass scores all candidates and the loss is the cross-entropy of
    the target among them (plus its token NLL). ``token`` (paper): only target tokens carry loss, so the LLM
    computes logits only from the position that predicts the first target token on (``logits_to_keep``): the
    LM head over the prompt is ~20 % of the compute and most of the activation memory. The loss is the mean cross-entropy over target tokens + EOS.
"""

from __future__ import annotations

import json
import numbers
import os
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers import initialization as hf_init
from transformers.utils import ModelOutput, logging

from .configuration_allmrec import ALLMRecCheckpointError, ALLMRecConfig
from .llm_scoring import (
    continuation_scores,
    greedy_generate,
    packed_continuation_logprobs,
    packed_continuation_scores,
    positions_from_mask,
    quote_count_table,
    reduce_scores,
)
from .processing_allmrec import (
    IGNORE_INDEX,
    encode_prompts,
    encode_target,
    pad_token_id,
    setup_placeholder_tokens,
    tokenizer_fingerprint,
)
from .matching import match_candidate
from .prompts import PromptBuilder

logger = logging.get_logger(__name__)

CATALOGUE_FILE = "item_catalogue.json"
WEIGHTS_FILE = "model.safetensors"
_LLM_PREFIX = "llm."
#: attention projections LoRA wraps by default (``llm_lora_rank > 0``)
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


def _saved(key: str) -> bool:
    """Checkpoint tensors: everything but the base LLM's (LoRA adapter weights inside the LLM are ours)."""
    return not key.startswith(_LLM_PREFIX) or ".lora_" in key


def add_lora_adapters(llm: nn.Module, rank: int, alpha: float, target_modules: Sequence[str] | None) -> list[str]:
    """Wrap the LLM's attention projections with trainable LoRA adapters (``peft``) in place → the wrapped names.

    The base weights stay frozen; only the adapters' A / B matrices get gradients. B starts at zero, so the
    adapted LLM is the frozen LLM until training moves it.
    """
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError as e:  # pragma: no cover - peft is a dependency of allmrec
        raise ALLMRecCheckpointError("this checkpoint has LoRA adapters on its LLM (llm_lora_rank > 0): pip install peft") from e
    if any(".lora_" in f".{name}" for name, _ in llm.named_parameters()):
        raise ALLMRecCheckpointError("the given LLM already carries LoRA adapters (it was used by another LoRA model); "
                                     "pass a freshly loaded base LLM")
    names = {name.rsplit(".", 1)[-1] for name, m in llm.named_modules() if isinstance(m, nn.Linear)}
    targets = list(target_modules) if target_modules else [t for t in DEFAULT_LORA_TARGETS if t in names]
    missing = [t for t in targets if t not in names]
    if not targets or missing:
        raise ALLMRecCheckpointError(
            f"LoRA targets {missing or list(DEFAULT_LORA_TARGETS)} are not Linear layers of this LLM "
            f"({type(llm).__name__}); name its attention projections with llm_lora_target_modules / --llm-lora-targets"
        )
    inject_adapter_in_model(LoraConfig(r=int(rank), lora_alpha=float(alpha), lora_dropout=0.0, bias="none",
                                       target_modules=targets), llm)
    for name, p in llm.named_parameters():
        p.requires_grad_(".lora_" in f".{name}")
    return targets


# ---------------------------------------------------------------------------------------------- helpers
def _resolve_llm_name(name: str) -> str:
    """Map an ``allmrec.assets`` short name (e.g. ``smollm2-135m-instruct``) to its local folder."""
    try:
        from allmrec.assets import resolve_llm
    except ImportError:  # Hub remote code without allmrec: names are Hub ids or paths
        return name
    return resolve_llm(name)


def load_llm(name_or_path: str, **llm_kwargs):
    """Load the frozen LLM and its tokenizer (``AutoModelForCausalLM`` / ``AutoTokenizer``)."""
    path = _resolve_llm_name(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        llm = AutoModelForCausalLM.from_pretrained(path, **llm_kwargs)
    except (OSError, ValueError) as e:
        raise ALLMRecCheckpointError(
            f"cannot load the base LLM {name_or_path!r} ({type(e).__name__}: {e}); pass llm=/tokenizer= or "
            f"llm_name_or_path=<a local folder or Hub id>"
        ) from e
    return llm, tokenizer


def _first_line(error: BaseException, limit: int = 200) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:limit]


def load_base_llm(config: ALLMRecConfig, **llm_kwargs):
    """The checkpoint's base LLM: the exact offline asset it was trained on where ``allmrec`` has it installed
    (``config.llm_source["asset"]``), else ``config.llm_name_or_path`` (the canonical Hub id, or a folder).

    A checkpoint downloaded from the Hub thus loads with no extra argument wherever its base LLM can be had; where it
    cannot, the error names the LLM and how to pass a local copy.
    """
    name = config.llm_name_or_path
    asset = (config.llm_source or {}).get("asset")
    tried = []
    if asset and asset != name:
        try:
            from allmrec.assets import resolve_llm
        except ImportError:  # Hub remote code without allmrec: the canonical Hub id below
            resolve_llm = None
        if resolve_llm is not None:
            try:
                return load_llm(resolve_llm(asset), **llm_kwargs)
            except Exception as e:  # not installed here (AssetError) or unreadable: try the Hub id
                tried.append(f"the allmrec asset {asset!r}: {_first_line(e)}")
    try:
        llm, tokenizer = load_llm(name, **llm_kwargs)
    except ALLMRecCheckpointError as e:
        tried.append(f"{name!r}: {_first_line(e.__cause__ or e)}")
        raise ALLMRecCheckpointError(
            f"cannot load this checkpoint's base LLM {name!r} (tried {'; '.join(tried)}). Pass a local copy: "
            f"from_pretrained(..., llm_name_or_path='/path/to/{name.rsplit('/', 1)[-1]}') (CLI: --llm PATH), or llm= and tokenizer="
        ) from e
    if asset:
        note = (config.llm_source or {}).get("weights")
        logger.warning("base LLM loaded from %s, not the %s asset it was trained on%s", name, asset, f" ({note})" if note else "")
    return llm, tokenizer


def _class_ref(cls) -> str:
    """``module.Class`` as transformers writes it in ``auto_map`` (module = the file name)."""
    return f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}"


def _build_cf_model(cf_config: dict, code_location: tuple[str, dict] | None = None):
    """Rebuild the frozen CF model from its stored config (weights come from the checkpoint).

    With ``allmrec`` installed its CF classes are used; otherwise (Hub remote code) the classes come from the
    CF code files saved next to the checkpoint, named by ``cf_config["auto_map"]`` (see ``save_pretrained``).
    """
    try:  # registers sasrec/gru4rec/nextitnet/ncf with AutoConfig/AutoModel when allmrec is installed
        from allmrec.cf import register_auto_classes

        register_auto_classes()
    except ImportError:
        pass
    cfg = dict(cf_config)
    model_type = cfg.pop("model_type")
    auto_map = cfg.pop("auto_map", None) or {}
    try:
        return AutoModel.from_config(AutoConfig.for_model(model_type, **cfg))
    except (KeyError, ValueError) as e:
        if code_location is None or not {"AutoConfig", "AutoModel"} <= set(auto_map):
            raise ALLMRecCheckpointError(
                f"this checkpoint's CF model type {model_type!r} is not known to transformers here; install allmrec "
                f"(which registers it) or pass cf_model=<the CF model>"
            ) from e
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    path, hub = code_location
    hub = {k: v for k, v in hub.items() if k in ("cache_dir", "force_download", "proxies", "revision", "token", "local_files_only")}
    config_cls = get_class_from_dynamic_module(auto_map["AutoConfig"], path, **hub)
    model_cls = get_class_from_dynamic_module(auto_map["AutoModel"], path, **hub)
    return model_cls(config_cls(**cfg))


def _freeze(module: nn.Module) -> None:
    module.requires_grad_(False)
    module.eval()
    # Already-initialised weights: keep post_init()'s weight initialisation away from them.
    for m in module.modules():
        m._is_hf_initialized = True
    for p in module.parameters():
        p._is_hf_initialized = True


def left_pad_histories(histories: Sequence[Sequence[int]], maxlen: int) -> torch.LongTensor:
    """Keep the last ``maxlen`` items of each history, left-pad with 0 → ``(B, maxlen)`` (CF input)."""
    out = torch.zeros((len(histories), maxlen), dtype=torch.long)
    for i, h in enumerate(histories):
        h = [int(x) for x in list(h)[-maxlen:]]
        if h:
            out[i, maxlen - len(h):] = torch.tensor(h, dtype=torch.long)
    return out


# ---------------------------------------------------------------------------------------------- modules
class ALLMRecProjector(nn.Module):
    """A 2-layer MLP into the LLM token space: Linear(in→H)–LayerNorm(H)–act–Linear(H→H) (paper Eq. 7)."""

    def __init__(self, in_dim: int, hidden: int, activation: str) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.act = nn.LeakyReLU() if activation == "leaky_relu" else nn.GELU()
        self.fc2 = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.norm(self.fc1(x))))


@dataclass
class ALLMRecOutput(ModelOutput):
    """Output of :meth:`ALLMRecForRecommendation.forward`.

    Args:
        loss: mean token cross-entropy over the target title tokens + EOS (``labels``), or with
            ``candidate_input_ids`` the mean per-user ``config.train_objective`` loss.
        logits: the LLM's logits ``(B, T, V)`` (or the kept last positions); None on the candidate path.
        cache: the LLM's KV cache (``use_cache=True``).
        candidate_scores: ``(B, C)`` answer scores (``config.listwise_normalization``) on the candidate path.
        match_loss: the matching loss before ``config.match_weight`` (when it was computed).
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    cache: object | None = None
    candidate_scores: torch.Tensor | None = None
    match_loss: torch.Tensor | None = None


class ALLMRecPreTrainedModel(PreTrainedModel):
    config_class = ALLMRecConfig
    base_model_prefix = "allmrec"
    main_input_name = "input_ids"
    # The LLM (and CF model) are never part of *our* initialisation or weight files.
    _keys_to_ignore_on_load_missing = [r"^llm\."]
    _no_split_modules = []

    def _init_weights(self, module: nn.Module) -> None:
        # Only the projectors are ours to initialise; sub-models (LLM, CF) dispatch to their own
        # _initialize_weights and are flagged as initialised in _freeze().
        if isinstance(module, ALLMRecProjector):
            # official code: nn.init.xavier_normal_ on both Linear weights; biases keep PyTorch defaults
            hf_init.xavier_normal_(module.fc1.weight)
            hf_init.xavier_normal_(module.fc2.weight)


# ---------------------------------------------------------------------------------------------- model
class ALLMRecForRecommendation(ALLMRecPreTrainedModel):
    r"""A-LLMRec: frozen LLM + F_U/F_I projectors + frozen CF model + stored stage-1 item tables.

    Build a fresh model with :meth:`from_components` (training), load one with :meth:`from_pretrained`.

    Example::

        >>> model = ALLMRecForRecommendation.from_pretrained("runs/stage2", llm=llm, tokenizer=tok)
        >>> model.recommend(history=[50, 172, 133], candidates=[1, 2, 3, 98])
        [{'item_id': 98, 'title': ..., 'score': -3.1}, ...]
    """

    def __init__(self, config: ALLMRecConfig, llm=None, tokenizer=None, cf_model=None) -> None:
        super().__init__(config)
        if llm is None:
            llm, loaded_tok = load_base_llm(config)
            tokenizer = tokenizer or loaded_tok
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(_resolve_llm_name(config.llm_name_or_path))
        self._check_llm(llm, tokenizer)
        _freeze(llm)
        self.llm = llm
        self._pending_lora = config.llm_lora_rank > 0  # added after post_init: its init must not touch them

        if cf_model is None and config.cf_config is not None:
            cf_model = _build_cf_model(config.cf_config)
        if cf_model is not None:
            cf_dim = int(getattr(cf_model.config, "hidden_size", config.cf_hidden_size))
            if cf_dim != config.cf_hidden_size:
                raise ALLMRecCheckpointError(
                    f"the CF model's hidden size is {cf_dim} but this A-LLMRec config expects "
                    f"cf_hidden_size={config.cf_hidden_size}; use the CF model the projectors were trained with"
                )
            _freeze(cf_model)
        self.cf_model = cf_model

        hidden = int(config.llm_hidden_size)
        self.user_projector = ALLMRecProjector(config.cf_hidden_size, hidden, "leaky_relu")
        self.item_projector = ALLMRecProjector(config.latent_dim, hidden, "gelu")
        n = config.num_items + 1
        self.register_buffer("item_joint", torch.zeros(n, config.latent_dim))
        self.register_buffer("item_text", torch.zeros(n, config.latent_dim))
        self.register_buffer("item_train_count", torch.zeros(n, dtype=torch.long))
        if config.input_standardization == "zscore":
            # per-dimension statistics of x^u (training users) and of each item table (rows 1..N), set by
            # from_components / set_user_statistics and stored with the checkpoint
            self.register_buffer("user_mean", torch.zeros(config.cf_hidden_size))
            self.register_buffer("user_std", torch.ones(config.cf_hidden_size))
            self.register_buffer("item_mean", torch.zeros(2, config.latent_dim))  # rows: joint (e_i), text (q_i)
            self.register_buffer("item_std", torch.ones(2, config.latent_dim))
        self.item_titles: list[str] | None = None
        #: evaluation ablation (``shuffle-items``): soft token of item i = that of item_permutation[i]; never saved
        self.item_permutation: torch.LongTensor | None = None
        self._llm_gradient_checkpointing = False

        self.tokenizer = tokenizer
        self.user_token_id, self.history_token_id, self.candidate_token_id = setup_placeholder_tokens(
            tokenizer, config.placeholder_tokens, config.placeholder_handling
        )
        self.post_init()
        if self._pending_lora:
            config.llm_lora_target_modules = add_lora_adapters(
                self.llm, config.llm_lora_rank, config.llm_lora_alpha, config.llm_lora_target_modules)

    # ------------------------------------------------------------------------------ construction
    def _check_llm(self, llm, tokenizer) -> None:
        """Record H / vocab / tokenizer fingerprint on a fresh config, or check them on a loaded one."""
        emb = llm.get_input_embeddings().weight
        vocab, hidden = int(emb.shape[0]), int(emb.shape[1])
        fingerprint = tokenizer_fingerprint(tokenizer)
        cfg = self.config
        where = f"(trained on {cfg.llm_name_or_path!r})"
        if cfg.llm_hidden_size is not None and cfg.llm_hidden_size != hidden:
            raise ALLMRecCheckpointError(
                f"LLM hidden size mismatch: this checkpoint's projectors output {cfg.llm_hidden_size} dims {where} "
                f"but the given LLM has hidden size {hidden}; load it with the LLM it was trained on"
            )
        if cfg.llm_vocab_size is not None and cfg.llm_vocab_size != vocab:
            raise ALLMRecCheckpointError(
                f"LLM vocabulary mismatch: checkpoint {where} expects {cfg.llm_vocab_size} embedding rows, the given "
                f"LLM has {vocab}; load it with the LLM it was trained on"
            )
        if cfg.tokenizer_fingerprint is not None and cfg.tokenizer_fingerprint != fingerprint:
            raise ALLMRecCheckpointError(
                f"tokenizer mismatch: the given tokenizer splits text differently from the one this checkpoint "
                f"was trained with {where}; pass that LLM's tokenizer"
            )
        cfg.llm_hidden_size, cfg.llm_vocab_size, cfg.tokenizer_fingerprint = hidden, vocab, fingerprint

    @classmethod
    def from_components(
        cls,
        llm,
        tokenizer,
        cf_model,
        item_joint: torch.Tensor,
        item_text: torch.Tensor | None = None,
        item_train_count: Sequence[int] | torch.Tensor | None = None,
        item_titles: Sequence[str] | None = None,
        llm_name_or_path: str | None = None,
        **config_kwargs,
    ) -> "ALLMRecForRecommendation":
        """A fresh (untrained projectors) model from a loaded LLM, CF model and stage-1 item tables.

        ``item_joint`` / ``item_text`` are ``(num_items + 1, d')`` with row 0 = padding; config fields not
        derived from the components (domain, prompt_style, ...) go in ``config_kwargs``.
        """
        item_joint = torch.as_tensor(item_joint, dtype=torch.float32)
        if item_joint.dim() != 2:
            raise ALLMRecCheckpointError(f"item_joint must be (num_items + 1, d'), got shape {tuple(item_joint.shape)}")
        n_rows, latent = item_joint.shape
        item_text = torch.zeros_like(item_joint) if item_text is None else torch.as_tensor(item_text, dtype=torch.float32)
        if item_text.shape != item_joint.shape:
            raise ALLMRecCheckpointError(f"item_text shape {tuple(item_text.shape)} != item_joint shape {tuple(item_joint.shape)}")
        counts = torch.zeros(n_rows, dtype=torch.long) if item_train_count is None else torch.as_tensor(item_train_count, dtype=torch.long)
        if counts.shape != (n_rows,):
            raise ALLMRecCheckpointError(f"item_train_count must have {n_rows} entries (row 0 = padding), got {tuple(counts.shape)}")
        if item_titles is not None and len(item_titles) != n_rows:
            raise ALLMRecCheckpointError(f"item_titles must have {n_rows} entries (index 0 = padding), got {len(item_titles)}")
        cf_config = cf_model.config.to_dict() if cf_model is not None else None
        cf_hidden = int(cf_model.config.hidden_size) if cf_model is not None else int(config_kwargs.pop("cf_hidden_size", 50))
        cf_maxlen = int(getattr(cf_model.config, "maxlen", 50)) if cf_model is not None else 50
        config_kwargs.setdefault("cf_max_seq_len", cf_maxlen)
        config = ALLMRecConfig(
            llm_name_or_path=llm_name_or_path or getattr(llm.config, "_name_or_path", None) or "unknown",
            cf_hidden_size=cf_hidden,
            latent_dim=int(latent),
            num_items=int(n_rows - 1),
            cf_config=cf_config,
            **config_kwargs,
        )
        model = cls(config, llm=llm, tokenizer=tokenizer, cf_model=cf_model)
        model.set_item_tables(item_joint, item_text, counts)
        model.item_titles = list(item_titles) if item_titles is not None else None
        return model

    def set_item_tables(self, joint: torch.Tensor, text: torch.Tensor, train_count: torch.Tensor) -> None:
        with torch.no_grad():
            self.item_joint.copy_(joint.to(self.item_joint.device))
            self.item_text.copy_(text.to(self.item_text.device))
            self.item_train_count.copy_(train_count.to(self.item_train_count.device))
            if self.config.input_standardization == "zscore":
                for row, table in enumerate((joint, text)):
                    rows = table[1:].float()
                    self.item_mean[row].copy_(rows.mean(0))
                    self.item_std[row].copy_(rows.std(0).clamp(min=1e-6))

    def set_user_statistics(self, user_embeds: torch.Tensor) -> None:
        """``input_standardization="zscore"``: record x^u's per-dimension mean / std over ``(N, d)`` training users."""
        if self.config.input_standardization != "zscore":
            return
        with torch.no_grad():
            x = user_embeds.float().to(self.user_mean.device)
            self.user_mean.copy_(x.mean(0))
            self.user_std.copy_(x.std(0).clamp(min=1e-6) if x.shape[0] > 1 else torch.ones_like(self.user_std))

    # ------------------------------------------------------------------------------ modes
    def train(self, mode: bool = True):
        """Only the projectors ever train: the LLM and the CF model stay in eval mode (no dropout)."""
        super().train(mode)
        self.llm.eval()
        if self.cf_model is not None:
            self.cf_model.eval()
        if mode and self._llm_gradient_checkpointing:
            self._activate_checkpointed_layers()
        return self

    def enable_llm_gradient_checkpointing(self) -> None:
        """Recompute the frozen LLM's activations in backward (less memory, ~30 % more compute).

        transformers checkpoints a layer only when that layer is in training mode, so exactly those layer
        modules are switched to training mode while their sub-modules stay in eval; a layer body that applies
        dropout itself (OPT) gets its dropout rate set to 0 so the frozen LLM stays deterministic.
        """
        if hasattr(self.llm, "activation_checkpointing_enable"):  # transformers >= 5.x name
            self.llm.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            self.llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self._llm_gradient_checkpointing = True
        self.train(self.training)

    def _activate_checkpointed_layers(self) -> None:
        for module in self.llm.modules():
            if getattr(module, "gradient_checkpointing", False) and hasattr(module, "_gradient_checkpointing_func"):
                module.training = True
                if isinstance(getattr(module, "dropout", None), float):
                    module.dropout = 0.0

    # ------------------------------------------------------------------------------ embeddings
    def item_latents(self, item_ids: torch.LongTensor, item_embedding: str | None = None) -> torch.Tensor:
        """Stage-1 vectors fed to F_I: ``cf`` e_i, ``text`` q_i, ``auto`` q_i for items never trained on."""
        mode = item_embedding or self.config.item_embedding
        if mode not in ("cf", "text", "auto"):
            raise ValueError(f"item_embedding must be cf, text or auto, got {mode!r}")
        item_ids = item_ids.to(self.item_joint.device)
        if self.item_permutation is not None:
            item_ids = self.item_permutation.to(item_ids.device)[item_ids]
        text = self._standardize_items(self.item_text[item_ids], 1)
        if mode == "text":
            return text
        joint = self._standardize_items(self.item_joint[item_ids], 0)
        use_text = torch.zeros(item_ids.shape, dtype=torch.bool, device=item_ids.device)
        if mode == "auto":
            use_text |= self.item_train_count[item_ids] == 0
        if self.training and getattr(self.config, "text_item_prob", 0.0) > 0:
            # F_I learns both inputs, so q_i works for items whose e_i was never trained (cold items)
            use_text |= torch.rand(item_ids.shape, device=item_ids.device) < self.config.text_item_prob
        return torch.where(use_text.unsqueeze(-1), text, joint)

    def _standardize_items(self, latents: torch.Tensor, table: int) -> torch.Tensor:
        if self.config.input_standardization != "zscore":
            return latents
        return (latents - self.item_mean[table]) / self.item_std[table]

    def _standardize_users(self, user_embeds: torch.Tensor) -> torch.Tensor:
        if self.config.input_standardization != "zscore":
            return user_embeds
        return (user_embeds - self.user_mean.to(user_embeds.device)) / self.user_std.to(user_embeds.device)

    @torch.no_grad()
    def user_representation(self, cf_input_ids: torch.LongTensor, user_ids: torch.LongTensor | None = None) -> torch.Tensor:
        """x^u from the frozen CF model: ``(B, L)`` left-padded item ids → ``(B, d)``."""
        if self.cf_model is None:
            raise ValueError("this model has no CF model; pass user_embeds (precomputed x^u) instead of cf_input_ids")
        device = next(self.cf_model.parameters()).device
        uids = user_ids.to(device) if user_ids is not None else None
        return self.cf_model.user_representation(cf_input_ids.to(device), uids).float()

    def embed_prompt(
        self,
        input_ids: torch.LongTensor,
        item_ids: torch.LongTensor | None = None,
        user_embeds: torch.Tensor | None = None,
        cf_input_ids: torch.LongTensor | None = None,
        user_ids: torch.LongTensor | None = None,
        item_embedding: str | None = None,
        user_tokens: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Token embeddings with O_u and O_i written at their placeholders → ``(B, T, H)``.

        ``user_tokens`` ``(B, H)``: vectors written at the user token as they are, instead of F_U(x^u) (training's
        teacher forcing, see ``config.user_token_teacher``).

        ``item_ids`` ``(B, P)`` lists, per row and in order of appearance, the item of every
        ``[HistoryEmb]``/``[CandidateEmb]`` token (-1 = padding). Raises ``ValueError`` when a row's
        placeholder count differs from its number of vectors.
        """
        embedding = self.llm.get_input_embeddings()
        input_ids = input_ids.to(embedding.weight.device)
        user_mask = input_ids == self.user_token_id
        item_mask = (input_ids == self.history_token_id) | (input_ids == self.candidate_token_id)
        # Placeholder ids may lie past the LLM's vocabulary: look up a harmless id there, overwritten below.
        safe_ids = input_ids.masked_fill(user_mask | item_mask, 0)
        embeds = embedding(safe_ids)

        users_per_row = user_mask.sum(1)
        if bool(user_mask.any()):
            if not bool((users_per_row == 1).all()):
                raise ValueError(
                    f"every prompt needs exactly one user token {self.config.user_token!r}; found per row "
                    f"{users_per_row.tolist()}"
                )
            if user_tokens is not None:
                o_u = user_tokens
            elif user_embeds is None:
                if cf_input_ids is None:
                    raise ValueError("the prompt has a user token: pass cf_input_ids (item history) or user_embeds")
                user_embeds = self.user_representation(cf_input_ids, user_ids)
            if user_tokens is None:
                o_u = self.project_users(user_embeds.to(device=embeds.device))
            if o_u.shape[0] != input_ids.shape[0]:
                raise ValueError(f"{o_u.shape[0]} user representations for {input_ids.shape[0]} prompts")
            o_u = o_u.to(device=embeds.device, dtype=embeds.dtype)
            embeds = embeds.masked_scatter(user_mask.unsqueeze(-1).expand_as(embeds), o_u)

        n_placeholders = item_mask.sum(1)
        if item_ids is None:
            item_ids = torch.full((input_ids.shape[0], 0), -1, dtype=torch.long)
        item_ids = item_ids.to(embeds.device)
        valid = item_ids >= 0
        n_vectors = valid.sum(1)
        if item_ids.shape[0] != input_ids.shape[0] or not bool((n_placeholders == n_vectors).all()):
            raise ValueError(
                f"item placeholder / item embedding count mismatch: placeholders per row {n_placeholders.tolist()}, "
                f"item ids per row {n_vectors.tolist()}"
            )
        if bool(valid.any()):
            o_i = self.project_items(item_ids[valid], item_embedding).to(embeds.dtype)  # row-major = order of appearance
            embeds = embeds.masked_scatter(item_mask.unsqueeze(-1).expand_as(embeds), o_i)
        return embeds

    def project_users(self, user_embeds: torch.Tensor) -> torch.Tensor:
        """O_u = F_U(x^u) (after the optional standardisation and rescaling): ``(B, d)`` → ``(B, H)``."""
        user_embeds = self._standardize_users(user_embeds.float())
        return self._scale_soft_tokens(self.user_projector(user_embeds.to(self.user_projector.fc1.weight.dtype)))

    def project_items(self, item_ids: torch.LongTensor, item_embedding: str | None = None) -> torch.Tensor:
        """O_i = F_I(e_i) for any shape of item ids: ``(...)`` → ``(..., H)``."""
        latents = self.item_latents(item_ids.reshape(-1), item_embedding)
        o_i = self._scale_soft_tokens(self.item_projector(latents.to(self.item_projector.fc1.weight.dtype)))
        return o_i.reshape(*item_ids.shape, -1)

    def match_scores(self, user_embeds: torch.Tensor, candidate_item_ids: torch.LongTensor,
                     item_embedding: str | None = None) -> torch.Tensor:
        """Cosine of O_u with each candidate's O_i over ``match_temperature``: ``(B, d)``, ``(B, C)`` → ``(B, C)``.

        The auxiliary matching loss (``match_weight``) is the cross-entropy of the target under these scores: it asks
        F_U and F_I to put the next item's soft token closest to the user token, which is the pattern the copy layout
        lets the LLM's induction heads complete (``"[CandidateEmb] T" ... "[UserRep]`` → ``T``).
        """
        o_u = self.project_users(user_embeds)
        o_c = self.project_items(candidate_item_ids.to(self.item_joint.device), item_embedding).to(o_u.device)
        return nn.functional.cosine_similarity(o_u.unsqueeze(1).float(), o_c.float(), dim=-1) / self.config.match_temperature

    def _scale_soft_tokens(self, vectors: torch.Tensor) -> torch.Tensor:
        """``soft_token_norm="embedding"``: rescale each projected vector to the LLM's mean token-embedding norm."""
        if getattr(self.config, "soft_token_norm", "none") == "none":
            return vectors
        if getattr(self, "_token_norm", None) is None:  # a property of the frozen LLM: computed once
            table = self.llm.get_input_embeddings().weight
            self._token_norm = float(table.detach().float().norm(dim=-1).mean())
        return vectors * (self._token_norm / vectors.norm(dim=-1, keepdim=True).clamp(min=1e-6))

    # ------------------------------------------------------------------------------ forward
    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.LongTensor | None = None,
        item_ids: torch.LongTensor | None = None,
        cf_input_ids: torch.LongTensor | None = None,
        user_embeds: torch.Tensor | None = None,
        user_ids: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        item_embedding: str | None = None,
        use_cache: bool = False,
        logits_to_keep: int = 0,
        candidate_input_ids: torch.LongTensor | None = None,
        candidate_mask: torch.LongTensor | None = None,
        target_index: torch.LongTensor | None = None,
        candidate_item_ids: torch.LongTensor | None = None,
        **kwargs,
    ) -> ALLMRecOutput:
        """Splice the soft tokens and run the frozen LLM; with ``labels`` the loss is the LLM's shifted
        cross-entropy over the non-ignored (target + EOS) tokens.

        With ``candidate_input_ids`` / ``candidate_mask`` ``(B, C, L)`` (every candidate's answer tokens + EOS) and
        ``target_index`` ``(B,)``, the prompt batch must be **left-padded** and the loss is
        ``config.train_objective`` from one packed pass over prompt + answers
        (:func:`~.llm_scoring.packed_continuation_logprobs`): ``listwise`` = cross-entropy of the target among the
        C answer scores, ``token`` = the target answer's mean token NLL, ``token+listwise`` = both, per user. With
        ``candidate_item_ids`` ``(B, C)`` (the candidates' item ids, in the same order) and ``config.match_weight`` > 0,
        ``match_weight`` × the matching loss (:meth:`match_scores`) is added per user.
        """
        # (TextOnlyRecommender borrows this forward: its config has no matching / teacher fields)
        match_weight = getattr(self.config, "match_weight", 0.0)
        teacher = self.training and candidate_item_ids is not None and getattr(self.config, "user_token_teacher", 0.0) > 0
        if candidate_item_ids is not None and (match_weight > 0 or teacher) and user_embeds is None:
            user_embeds = self.user_representation(cf_input_ids, user_ids)  # computed once for the prompt and the match
        user_tokens = None
        if teacher:  # some prompts get the target's own O_i as user token (teacher forcing the copy)
            if target_index is None:
                raise ValueError("user_token_teacher needs target_index with candidate_item_ids")
            o_u = self.project_users(user_embeds)
            rows = torch.arange(candidate_item_ids.shape[0])
            o_target = self.project_items(candidate_item_ids[rows, target_index.cpu()]).to(o_u.device)
            forced = (torch.rand(o_u.shape[0]) < self.config.user_token_teacher).to(o_u.device).unsqueeze(-1)
            user_tokens = torch.where(forced, o_target.to(o_u.dtype), o_u)
        extra = {"user_tokens": user_tokens} if user_tokens is not None else {}
        inputs_embeds = self.embed_prompt(input_ids, item_ids, user_embeds, cf_input_ids, user_ids, item_embedding, **extra)
        if candidate_input_ids is not None:
            out = self._candidate_loss(inputs_embeds, attention_mask, candidate_input_ids, candidate_mask, target_index)
            if candidate_item_ids is not None and match_weight > 0:
                match = self.match_scores(user_embeds, candidate_item_ids, item_embedding)
                out.match_loss = nn.functional.cross_entropy(match, target_index.to(match.device))
                out.loss = out.loss + match_weight * out.match_loss.to(out.loss.device)
            return out
        if attention_mask is None:
            attention_mask = torch.ones(input_ids.shape, dtype=torch.long)
        attention_mask = attention_mask.to(inputs_embeds.device)
        if position_ids is None:
            position_ids = positions_from_mask(attention_mask)
        keep = logits_to_keep
        first_label = None
        if labels is not None:
            labels = labels.to(inputs_embeds.device)
            has_label = (labels != IGNORE_INDEX).any(0)
            if not bool(has_label.any()):
                raise ValueError("labels mark no target token (all are -100)")
            # The LM head over the ~400 prompt positions is ~20 % of the compute and most of the activation
            # memory, yet only target tokens carry loss: keep logits from the position predicting the first one.
            first_label = int(has_label.nonzero()[0])
            keep = input_ids.shape[1] - first_label + 1 if self._llm_accepts("logits_to_keep") else 0
        extra = {"logits_to_keep": keep} if keep else {}
        out = self.llm(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids.to(inputs_embeds.device),
            use_cache=use_cache,
            **extra,
        )
        loss = None
        if labels is not None:
            logits = out.logits[:, -(input_ids.shape[1] - first_label + 1):]  # no-op when keep was applied
            # logits at position t predict token t + 1 (the usual causal-LM shift)
            loss = nn.functional.cross_entropy(
                logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                labels[:, first_label:].reshape(-1),
                ignore_index=IGNORE_INDEX,
            )
        kv = getattr(out, "cache", None) if hasattr(out, "cache") else getattr(out, "past_key_values", None)
        return ALLMRecOutput(loss=loss, logits=out.logits, cache=kv)

    def _candidate_loss(self, inputs_embeds, attention_mask, candidate_input_ids, candidate_mask, target_index) -> ALLMRecOutput:
        if candidate_mask is None or target_index is None:
            raise ValueError("candidate_input_ids needs candidate_mask and target_index")
        device = inputs_embeds.device
        if attention_mask is None:
            attention_mask = torch.ones(inputs_embeds.shape[:2], dtype=torch.long)
        token_logp = packed_continuation_logprobs(self.llm, inputs_embeds, attention_mask.to(device),
                                                  candidate_input_ids.to(device), candidate_mask.to(device))
        scores = reduce_scores(token_logp, candidate_mask, self.config.listwise_normalization)
        target_index = target_index.to(device)
        objective = self.config.train_objective
        per_user = torch.zeros(scores.shape[0], device=device)
        if "listwise" in objective:
            per_user = per_user + nn.functional.cross_entropy(scores, target_index, reduction="none")
        if "token" in objective:
            rows = torch.arange(scores.shape[0], device=device)
            mask = candidate_mask.to(device)[rows, target_index].float()
            per_user = per_user - (token_logp[rows, target_index] * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        return ALLMRecOutput(loss=per_user.mean(), candidate_scores=scores)

    def _llm_accepts(self, argument: str) -> bool:
        import inspect

        return argument in inspect.signature(self.llm.forward).parameters

    # ------------------------------------------------------------------------------ inference
    @property
    def device(self) -> torch.device:
        return self.llm.get_input_embeddings().weight.device

    @torch.no_grad()
    def generate_answers(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.LongTensor,
        item_ids: torch.LongTensor | None = None,
        cf_input_ids: torch.LongTensor | None = None,
        user_embeds: torch.Tensor | None = None,
        user_ids: torch.LongTensor | None = None,
        item_embedding: str | None = None,
        max_new_tokens: int | None = None,
        repetition_penalty: float | None = None,
        stop_at_answer: bool | None = None,
    ) -> torch.LongTensor:
        """Greedy decoding from a **left-padded** batch → only the new token ids ``(B, new)``.

        ``stop_at_answer`` (default: ``config.generation_stop_at_answer``) ends a row once it has produced the
        answer's closing quote, since only the first quoted title is parsed; otherwise rows run to EOS or
        ``max_new_tokens`` as in the official code.
        """
        embeds = self.embed_prompt(input_ids, item_ids, user_embeds, cf_input_ids, user_ids, item_embedding)
        stop = self.config.generation_stop_at_answer if stop_at_answer is None else stop_at_answer
        budget = int(max_new_tokens or self.config.generation_max_new_tokens)
        if self.index_answers:  # a label is one token (two with a closing parenthesis): nothing after it is read
            stop, budget = False, min(budget, 3)
        return greedy_generate(
            self.llm, embeds, attention_mask,
            eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=pad_token_id(self.tokenizer),
            max_new_tokens=budget,
            repetition_penalty=float(repetition_penalty or self.config.generation_repetition_penalty),
            quote_counts=self._quote_counts() if stop else None,
            quotes=1 if self.answer_opens_with_quote else 2,
        )

    @property
    def answer_opens_with_quote(self) -> bool:
        """``copy`` layout: the prompt ends with the answer's opening quote, so the LLM writes ``' Title"'``."""
        return getattr(self.config, "prompt_layout", "paper") == "copy" and not self.index_answers

    @property
    def index_answers(self) -> bool:
        """The answer is a candidate label (``answer_format="index"``), resolved to its title after decoding."""
        return getattr(self.config, "answer_format", "title") == "index"

    def decoded_answer(self, text: str) -> str:
        """A generated continuation as a complete quoted answer (puts back the prompt's opening quote)."""
        return '"' + text.lstrip() if self.answer_opens_with_quote else text

    def _quote_counts(self) -> torch.Tensor:
        """``"`` per token of the vocabulary (stop-at-answer), computed once."""
        if getattr(self, "_quote_count_table", None) is None:
            self._quote_count_table = quote_count_table(self.tokenizer, int(self.config.llm_vocab_size))
        return self._quote_count_table

    @torch.no_grad()
    def score_candidates(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.LongTensor,
        continuations: Sequence[Sequence[Sequence[int]]],
        item_ids: torch.LongTensor | None = None,
        cf_input_ids: torch.LongTensor | None = None,
        user_embeds: torch.Tensor | None = None,
        user_ids: torch.LongTensor | None = None,
        item_embedding: str | None = None,
        normalization: str | None = None,
    ) -> torch.Tensor:
        """Log-likelihood of each row's C continuations (token ids, e.g. ``encode_target``) → ``(B, C)``.

        ``config.rank_scoring``: ``packed`` = one forward pass over the left-padded prompts followed by all answers
        (block attention mask); ``cache`` = the prompt's KV cache repeated C times and the B×C continuations
        scored in one batch. Both give the same scores up to float rounding.
        """
        embeds = self.embed_prompt(input_ids, item_ids, user_embeds, cf_input_ids, user_ids, item_embedding)
        score = packed_continuation_scores if getattr(self.config, "rank_scoring", "cache") == "packed" else continuation_scores
        return score(
            self.llm, embeds, attention_mask, continuations,
            pad_token_id=pad_token_id(self.tokenizer),
            normalization=normalization or self.config.rank_normalization,
        )

    # ------------------------------------------------------------------------------ one user
    def prompt_builder(self, soft_tokens: bool = True) -> PromptBuilder:
        c = self.config
        return PromptBuilder(
            domain=c.domain, style=c.prompt_style, soft_tokens=soft_tokens, history_len=c.history_len,
            user_token=c.user_token, history_token=c.history_token, candidate_token=c.candidate_token,
            layout=getattr(c, "prompt_layout", "paper"), token_set=getattr(c, "soft_token_set", "both"),
            answer_format=getattr(c, "answer_format", "title"),
        )

    def to_item_ids(self, items: Sequence[int | str], what: str = "items", titles: Sequence[str] | None = None) -> list[int]:
        """Item ids from ids, digit strings or catalogue titles (case-insensitive); ValueError if unknown."""
        titles = self.item_titles if titles is None else titles
        if all(isinstance(i, numbers.Integral) or (isinstance(i, str) and i.strip().isdigit()) for i in items):
            ids = [int(i) for i in items]
        else:
            if titles is None:
                raise ValueError(f"{what} given as titles, but this checkpoint has no item catalogue; pass item ids")
            lookup = {t.strip().lower(): i for i, t in enumerate(titles) if i > 0}
            ids = []
            for t in items:
                key = str(t).strip().lower()
                if key not in lookup:
                    raise ValueError(f"{what}: {t!r} is not in the item catalogue")
                ids.append(lookup[key])
        bad = [i for i in ids if not 1 <= i <= self.config.num_items]
        if bad:
            raise ValueError(f"{what}: item ids {bad} are outside 1..{self.config.num_items}")
        return ids

    @torch.no_grad()
    def recommend(
        self,
        history: Sequence[int | str],
        candidates: Sequence[int | str],
        item_embedding: str | None = None,
        titles: Sequence[str] | None = None,
    ) -> list[dict]:
        """Rank ``candidates`` for one user with ``history`` (oldest first; ids or catalogue titles).

        ``titles`` (index = item id) replaces the stored catalogue for this call. Returns
        ``[{"item_id", "title", "score"}, ...]`` best first; ``score`` = log P(answer | prompt).
        """
        titles = self.item_titles if titles is None else list(titles)
        if titles is None:
            raise ValueError("no item catalogue: pass titles=[...] (index = item id) or load a checkpoint that has one")
        if len(titles) != self.config.num_items + 1:
            raise ValueError(f"titles must have num_items + 1 = {self.config.num_items + 1} entries (index 0 = padding)")
        hist = self.to_item_ids(history, "history", titles)
        cands = self.to_item_ids(candidates, "candidates", titles)
        if not hist:
            raise ValueError("history is empty: A-LLMRec needs at least one interacted item")
        builder = self.prompt_builder()
        prompt = builder.build(hist, cands, titles)
        batch = encode_prompts(self.tokenizer, [prompt], padding_side="left")
        conts = [[encode_target(self.tokenizer, a) for a in builder.candidate_answers(cands, titles)]]
        scores = self.score_candidates(
            batch["input_ids"], batch["attention_mask"], conts, item_ids=batch["item_ids"],
            cf_input_ids=left_pad_histories([hist], self.config.cf_max_seq_len), item_embedding=item_embedding,
        )[0].tolist()
        ranked = sorted(zip(cands, scores), key=lambda x: -x[1])
        return [{"item_id": i, "title": titles[i], "score": float(s)} for i, s in ranked]

    def recommend_generate(self, history: Sequence[int | str], candidates: Sequence[int | str],
                           item_embedding: str | None = None) -> dict:
        """Generate one answer for one user → ``{"answer", "item_id", "title"}``; ``item_id`` / ``title`` name the
        candidate the answer matches exactly (:func:`~.matching.match_candidate`), ``None`` for an invalid answer."""
        titles = self.item_titles
        if titles is None:
            raise ValueError("this checkpoint has no item catalogue (item_catalogue.json); generation needs titles")
        hist = self.to_item_ids(history, "history")
        cands = self.to_item_ids(candidates, "candidates")
        if not hist:
            raise ValueError("history is empty: A-LLMRec needs at least one interacted item")
        batch = encode_prompts(self.tokenizer, [self.prompt_builder().build(hist, cands, titles)], padding_side="left")
        new = self.generate_answers(batch["input_ids"], batch["attention_mask"], item_ids=batch["item_ids"],
                                    cf_input_ids=left_pad_histories([hist], self.config.cf_max_seq_len),
                                    item_embedding=item_embedding)
        answer = self.prompt_builder().resolve_answer(self.decoded_answer(self.tokenizer.decode(new[0], skip_special_tokens=True)),
                                                      [titles[c] for c in cands])
        j = match_candidate(answer, [titles[c] for c in cands])
        return {"answer": answer, "item_id": None if j is None else cands[j], "title": None if j is None else titles[cands[j]]}

    # ------------------------------------------------------------------------------ save / load
    def state_dict_without_llm(self) -> dict[str, torch.Tensor]:
        """Everything that belongs in a checkpoint: projectors, CF model, item tables, LoRA adapters (no base LLM tensor)."""
        return {k: v for k, v in self.state_dict().items() if _saved(k)}

    def save_pretrained(self, save_directory, *args, state_dict=None, is_main_process: bool = True, **kwargs):
        """Write config + safetensors **without any base-LLM tensor** (+ ``item_catalogue.json``)."""
        state_dict = self.state_dict() if state_dict is None else state_dict
        state_dict = {k: v for k, v in state_dict.items() if _saved(k)}
        if is_main_process and self.cf_model is not None:
            # Ship the CF model's code (e.g. sasrec.py + its sibling imports) and name its classes, so that Hub
            # remote code can rebuild it without allmrec (see _build_cf_model).
            from transformers.dynamic_module_utils import custom_object_save

            os.makedirs(save_directory, exist_ok=True)
            custom_object_save(self.cf_model, save_directory)
            if type(self.cf_model.config).__module__ != type(self.cf_model).__module__:
                custom_object_save(self.cf_model.config, save_directory)
            self.config.cf_config = {
                **self.config.cf_config,
                "auto_map": {"AutoConfig": _class_ref(type(self.cf_model.config)), "AutoModel": _class_ref(type(self.cf_model))},
            }
        if is_main_process:
            # the checkpoint's own `pipeline()` task: copy the pipeline file beside the model code, name it in config
            # (imported here: the pipeline module pulls in transformers.pipelines, which remote-code loading never needs)
            import shutil

            from .pipeline_allmrec import CUSTOM_PIPELINES

            os.makedirs(save_directory, exist_ok=True)
            shutil.copy(os.path.join(os.path.dirname(os.path.abspath(__file__)), "pipeline_allmrec.py"), save_directory)
            self.config.custom_pipelines = CUSTOM_PIPELINES
        if is_main_process and self.item_titles is not None:
            os.makedirs(save_directory, exist_ok=True)
            # written before super() so that push_to_hub=True uploads it too
            with open(os.path.join(save_directory, CATALOGUE_FILE), "w", encoding="utf-8") as f:
                json.dump({"titles": self.item_titles}, f, ensure_ascii=False)
        return super().save_pretrained(save_directory, *args, state_dict=state_dict, is_main_process=is_main_process, **kwargs)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path,
        *model_args,
        llm=None,
        tokenizer=None,
        cf_model=None,
        config: ALLMRecConfig | None = None,
        llm_kwargs: dict | None = None,
        **kwargs,
    ) -> "ALLMRecForRecommendation":
        """Load a checkpoint onto a base LLM.

        The LLM is ``llm=`` (with ``tokenizer=``) when given, else ``config.llm_name_or_path`` (overridable with
        ``llm_name_or_path=``; ``allmrec`` asset names resolve to local folders), loaded with ``llm_kwargs``
        (``dtype=``, ``device_map=`` and ``attn_implementation=`` are passed to it as well).
        Other keyword arguments that name config fields (e.g. ``item_embedding="auto"``) override the stored
        config. Raises :class:`ALLMRecCheckpointError` on a missing/corrupt file or a mismatched LLM.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        from transformers.utils import cached_file

        hub = {k: kwargs.pop(k) for k in ("cache_dir", "force_download", "local_files_only", "proxies", "revision", "subfolder", "token") if k in kwargs}
        for ignored in ("trust_remote_code", "_from_auto", "_from_pipeline", "code_revision", "_commit_hash", "adapter_kwargs", "output_loading_info"):
            kwargs.pop(ignored, None)
        llm_kwargs = dict(llm_kwargs or {})
        for name in ("dtype", "torch_dtype", "device_map", "attn_implementation"):  # meant for the LLM
            if name in kwargs:
                llm_kwargs.setdefault("dtype" if name == "torch_dtype" else name, kwargs.pop(name))
        path = str(pretrained_model_name_or_path)
        if config is None:
            try:
                config = cls.config_class.from_pretrained(path, **hub)
            except (OSError, ValueError) as e:
                raise ALLMRecCheckpointError(f"cannot read the A-LLMRec config in {path} ({e}); is it a stage-2 checkpoint?") from e
        overrides = {k: kwargs.pop(k) for k in list(kwargs) if k in config.to_dict()}
        if kwargs:
            raise TypeError(f"unexpected arguments for ALLMRecForRecommendation.from_pretrained: {sorted(kwargs)}")
        for k, v in overrides.items():
            setattr(config, k, v)
        config.validate_fields()
        if llm is None:
            if "llm_name_or_path" in overrides:  # the caller's own copy: no asset lookup
                config.llm_source = None
            llm, loaded_tok = load_base_llm(config, **llm_kwargs)
            tokenizer = tokenizer or loaded_tok

        try:
            weights = cached_file(path, WEIGHTS_FILE, **hub)
        except OSError as e:
            raise ALLMRecCheckpointError(f"{path} has no {WEIGHTS_FILE} ({e}); the save was incomplete or this is not a checkpoint") from e
        try:
            state = load_file(weights)
        except (SafetensorError, OSError, ValueError) as e:
            raise ALLMRecCheckpointError(f"{weights} is corrupt ({e}); re-save or re-download the checkpoint") from e

        if cf_model is None and config.cf_config is not None:
            cf_model = _build_cf_model(config.cf_config, code_location=(path, hub))
        model = cls(config, llm=llm, tokenizer=tokenizer, cf_model=cf_model)
        expected = set(model.state_dict_without_llm())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise ALLMRecCheckpointError(
                f"{weights} does not match its config: missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
        try:
            model.load_state_dict(state, strict=False)
        except RuntimeError as e:  # shape mismatches
            raise ALLMRecCheckpointError(f"{weights} does not fit its config.json: {e}") from e

        try:
            catalogue = cached_file(path, CATALOGUE_FILE, _raise_exceptions_for_missing_entries=False, **hub)
        except OSError:
            catalogue = None
        if catalogue:
            try:
                with open(catalogue, encoding="utf-8") as f:
                    model.item_titles = list(json.load(f)["titles"])
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ALLMRecCheckpointError(f"{catalogue} is corrupt ({e}); re-save the checkpoint") from e
            if len(model.item_titles) != config.num_items + 1:
                raise ALLMRecCheckpointError(
                    f"{catalogue} lists {len(model.item_titles)} titles, the config has {config.num_items} items (+ padding)"
                )
        model.eval()
        return model


# save_pretrained copies this file (+ siblings) and writes auto_map: a checkpoint carries its own code.
ALLMRecForRecommendation.register_for_auto_class("AutoModel")

__all__ = [
    "ALLMRecForRecommendation",
    "ALLMRecPreTrainedModel",
    "ALLMRecProjector",
    "ALLMRecOutput",
    "load_llm",
    "left_pad_histories",
]
