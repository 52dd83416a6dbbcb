"""A-LLMRec stage-2 model configuration.

Importable with only ``transformers`` and its sibling files (it ships as Hub remote code).
"""

from __future__ import annotations

from transformers import PretrainedConfig

try:  # inside the allmrec package: errors the CLI reports as one line
    from allmrec.errors import AllmrecError as _ErrorBase
    from allmrec.errors import CheckpointError as _CheckpointErrorBase
except ImportError:  # loaded as Hub remote code where allmrec is not installed: plain ValueErrors
    _ErrorBase = _CheckpointErrorBase = ValueError

from .prompts import (
    DEFAULT_CANDIDATE_TOKEN,
    DEFAULT_HISTORY_TOKEN,
    DEFAULT_USER_TOKEN,
    DOMAINS,
    PROMPT_LAYOUTS,
    PROMPT_STYLES,
    SOFT_TOKEN_SETS,
    ANSWER_FORMATS,
)

ITEM_EMBEDDING_MODES = ("cf", "text", "auto")
ITEM_TABLES = ("stage1", "random")
SOFT_TOKEN_NORMS = ("none", "embedding")
PLACEHOLDER_HANDLING = ("added_tokens", "existing_tokens")
RANK_NORMALIZATIONS = ("sum", "mean")
RANK_SCORINGS = ("packed", "cache")
INPUT_STANDARDIZATIONS = ("none", "zscore")
TRAIN_OBJECTIVES = ("token", "listwise", "token+listwise")


def _bases(base: type) -> tuple[type, ...]:
    # (AllmrecError, ValueError) inside the package; just ValueError without it (a class cannot list it twice)
    return (ValueError,) if base is ValueError else (base, ValueError)


class ALLMRecConfigError(*_bases(_ErrorBase)):
    """An invalid ``ALLMRecConfig`` field (a ``ValueError``; also an ``AllmrecError`` when allmrec is installed)."""


class ALLMRecCheckpointError(*_bases(_CheckpointErrorBase)):
    """A checkpoint or LLM that does not fit the model being loaded."""


class ALLMRecConfig(PretrainedConfig):
    r"""Hyper-parameters of A-LLMRec stage 2 (paper §4.2). Defaults are the paper's.

    Args:
        llm_name_or_path (`str`, defaults to ``"facebook/opt-6.7b"``):
            The frozen causal LLM (Hub id, local folder, or an ``allmrec.assets`` short name such as
            ``smollm2-135m-instruct``). Its weights are never stored in the checkpoint.
        llm_source (`dict`, *optional*):
            What exactly the base LLM was when ``llm_name_or_path`` (then the *canonical Hub id*) names a copy, e.g. the
            offline ``allmrec`` asset ``{"asset": "smollm2-135m-instruct", "file": ..., "sha256": ..., "weights": ...}``.
            Loading prefers that asset where allmrec has it installed, else the Hub id (whose weights may differ a
            little: a warning says so).
        llm_hidden_size (`int`, *optional*):
            H, the LLM's token-embedding size (OPT-6.7B: 4096). Recorded when the model is built and
            checked when it is loaded onto an LLM.
        llm_vocab_size (`int`, *optional*):
            Rows of the LLM's input-embedding table; recorded and checked like ``llm_hidden_size``.
        tokenizer_fingerprint (`str`, *optional*):
            Token ids of a fixed probe sentence under the tokenizer used in training; a different
            tokenizer would silently change what the projectors were trained against, so loading checks it.
        cf_hidden_size (`int`, defaults to 50):
            d, the size of the CF user representation x^u (paper: SASRec with 50 dims).
        latent_dim (`int`, defaults to 128):
            d', the size of the stage-1 joint embedding e_i and text embedding q_i (paper Table 3: 128).
        num_items (`int`, defaults to 0):
            Items in the catalogue (ids ``1..num_items``; 0 = padding); sizes the stored item tables.
        cf_config (`dict`, *optional*):
            The frozen CF model's config (``to_dict()``, with ``model_type``): the model is rebuilt from it on
            load and its weights come from this checkpoint.
        cf_max_seq_len (`int`, defaults to 50):
            Most recent items the CF model reads to compute x^u (SASRec ``maxlen``, paper: 50).
        domain (`str`, defaults to ``"movie"``):
            Prompt wording: ``movie`` (watched), ``game`` (played) or ``item`` (bought).
        prompt_style (`str`, defaults to ``"paper"``):
            ``paper`` (Fig. 3 wording as normal text), ``official`` (the authors' code string verbatim) or
            ``fig6`` (the wording of Fig. 6). See ``prompts.py``.
        prompt_layout (`str`, defaults to ``"paper"``):
            Where the soft tokens go: ``paper`` (user token first, each item token after its title) or ``copy`` (each
            item token before its title, the user token right before the answer, so that the answer repeats the
            candidate list's pattern and the LLM's copy heads can pick a title by matching O_u with the O_i). Not in
            the paper; see ``prompts.py``.
        soft_token_set (`str`, defaults to ``"both"``):
            Which soft tokens the prompt carries: ``both`` (A-LLMRec), ``user`` (O_u only, no item soft tokens: paper
            Table 9 "w/o joint embedding") or ``items`` (the O_i only, no user token: Table 9 "w/o user representation").
        answer_format (`str`, defaults to ``"title"``):
            ``title`` (paper): the LLM answers with the next item's quoted title. ``index``: the candidates are labelled
            ``(A)``..``(T)`` and the answer is the label (one token decides the choice, so the listwise loss and rank
            mode score 20 one-token answers after one prompt). Not in the paper.
        item_table (`str`, defaults to ``"stage1"``):
            Provenance of the stored item tables: ``stage1`` (the stage-1 e_i / q_i) or ``random`` (seeded random
            vectors with the stage-1 tables' per-dimension mean and spread: Table 9 "with random joint embedding").
        history_len (`int`, defaults to 10):
            History titles listed in the prompt (the most recent ones; paper: 10).
        num_candidates (`int`, defaults to 20):
            Candidate titles per prompt (target + 19 negatives; paper: 20).
        user_token / history_token / candidate_token (`str`):
            Placeholder strings for O_u and the O_i after history / candidate titles
            (``[UserRep]``, ``[HistoryEmb]``, ``[CandidateEmb]`` as in the official code).
        placeholder_handling (`str`, defaults to ``"added_tokens"``):
            How placeholders become single tokens: ``added_tokens`` adds them to the tokenizer (ids past the
            LLM's vocabulary are fine: they are never looked up in the LLM's embedding table, see
            ``modeling_allmrec``); ``existing_tokens`` requires each string to already be one token of the
            tokenizer (e.g. Llama-3 ``<|reserved_special_token_0|>``) and leaves the tokenizer untouched.
        item_embedding (`str`, defaults to ``"cf"``):
            Which stage-1 vector feeds F_I: ``cf`` = e_i = f_I^enc(E_i) (paper), ``text`` = q_i = f_T^enc(SBERT),
            ``auto`` = q_i for items with no training interaction, else e_i (the paper's "A-LLMRec (SBERT)").
        text_item_prob (`float`, defaults to 0.0):
            Training only: the probability that an item's F_I input is its text vector q_i instead of e_i, drawn per
            item occurrence. 0 (paper) trains F_I on e_i alone, so q_i at inference (``text`` / ``auto``) feeds F_I a
            vector it never saw; > 0 trains F_I on both, so either works for cold items. Not in the paper.
        soft_token_norm (`str`, defaults to ``"none"``):
            ``none`` (paper): F_U / F_I outputs enter the LLM as they are. ``embedding``: each projected vector is
            rescaled to the mean L2 norm of the LLM's input-embedding rows (its direction is what F_U / F_I learn).
            Not in the paper: with a small LLM and collapsed stage-1 tables, unconstrained projectors were found
            to emit near-constant vectors ~20x larger than any token embedding (see the README).
        input_standardization (`str`, defaults to ``"none"``):
            ``none`` (paper): F_U reads x^u and F_I reads e_i as they are. ``zscore``: both are standardised per
            dimension with statistics of the training users / the item table, stored as buffers (not in the paper:
            stage-1 tables on small data are nearly constant, cosine ~0.999, and F_U/F_I's LayerNorm then flattens
            what differs between items).
        train_objective (`str`, defaults to ``"token"``):
            How the projectors were trained (recorded; ``forward`` computes it): ``token`` (paper Eq. 8: cross-entropy
            on the target title + EOS), ``listwise`` (softmax cross-entropy over the candidates' answer
            log-likelihoods: the choice itself) or ``token+listwise`` (their sum, per user).
        listwise_normalization (`str`, defaults to ``"mean"``):
            The candidate score inside the listwise loss: ``sum`` (log P(answer)) or ``mean`` (per-token mean, which
            does not favour short titles).
        match_weight (`float`, defaults to 0.0):
            Weight of an auxiliary matching loss in stage 2 (not in the paper; 0 = off): the cross-entropy of the
            target among the candidates under cos(O_u, O_i) / ``match_temperature``, i.e. F_U and F_I are asked to
            place the next item's soft token nearest the user token. It needs no LLM pass and gives the projectors
            the CF model's ranking directly; the copy layout lets the LLM read it by matching. Used with the
            listwise objectives (the loss is per user).
        match_temperature (`float`, defaults to 0.1):
            Temperature of the matching loss's cosine scores.
        user_token_teacher (`float`, defaults to 0.0):
            Training only (not in the paper; 0 = off): the probability that a training prompt's user token is the
            target item's own O_i instead of O_u. The LLM loss then teaches F_I soft tokens that the frozen LLM can
            copy a title from by matching (``"[CandidateEmb] T" ... "[UserRep]`` → ``T``), while the matching loss
            teaches F_U to put O_u where O_target is. Inference always uses O_u.
        llm_lora_rank (`int`, defaults to 0):
            0 (paper): the LLM is frozen and only F_U / F_I train. > 0: LoRA adapters of this rank on the LLM's
            attention projections train with the projectors (not in the paper; the frozen 135M LLM was measured to
            follow even an exact copy of the target's soft token only 45 % of the time, see the README). The adapter
            weights are saved in the checkpoint (the base LLM's are not); loading needs ``peft``.
        llm_lora_alpha (`float`, defaults to 16.0):
            LoRA scaling numerator: the update is multiplied by ``alpha / rank`` (TALLRec: 16).
        llm_lora_target_modules (`list[str]`, *optional*):
            Module names the adapters wrap; default: the attention projections ``q_proj``, ``k_proj``, ``v_proj``,
            ``o_proj`` (Llama / OPT / Mistral / Qwen naming; other architectures must name theirs).
        rank_scoring (`str`, defaults to ``"packed"``):
            How rank mode computes the candidates' likelihoods: ``packed`` (one forward pass over the prompt and all
            answers with a block attention mask) or ``cache`` (the prompt's KV cache copied per candidate). Equal
            up to float rounding; packed is faster on CPU and needs no cache copies.
        generation_repetition_penalty (`float`, defaults to 1.5):
            Greedy decoding's repetition penalty (official code: 1.5).
        generation_max_new_tokens (`int`, defaults to 64):
            Generation budget. The official code bounds prompt + answer by ``max_length=512``; one title
            needs far fewer tokens, and the answer is parsed up to its first closing quote anyway.
        generation_stop_at_answer (`bool`, defaults to `False`):
            End a generated answer at its closing quote (only the first quoted title is parsed, so exact Hit@1 and
            ``valid_rate`` are unchanged; the lenient rule then sees one title). ``False`` decodes to EOS or
            ``generation_max_new_tokens`` like the official code; ``True`` is much faster for models that do not
            stop by themselves (untrained projectors, LLM-Only).
        rank_normalization (`str`, defaults to ``"sum"``):
            Rank mode's candidate score: ``sum`` = log P(title + EOS | prompt) (the sequence likelihood the
            LM was trained to maximise, also what greedy decoding approximates); ``mean`` = per-token mean,
            which favours long titles whose later tokens are predictable.
        cf_model_path (`str`, *optional*): provenance: the CF checkpoint the stage-1 model aligned.
        stage1_path (`str`, *optional*): provenance: the stage-1 output the item tables came from.
        dataset_name (`str`, *optional*): provenance: the prepared dataset the projectors were trained on.
        allmrec_version (`str`, *optional*): the package version that wrote the checkpoint.
    """

    model_type = "allmrec"

    def __init__(
        self,
        llm_name_or_path: str = "facebook/opt-6.7b",
        llm_hidden_size: int | None = None,
        llm_source: dict | None = None,
        llm_vocab_size: int | None = None,
        tokenizer_fingerprint: str | None = None,
        cf_hidden_size: int = 50,
        latent_dim: int = 128,
        num_items: int = 0,
        cf_config: dict | None = None,
        cf_max_seq_len: int = 50,
        domain: str = "movie",
        prompt_style: str = "paper",
        history_len: int = 10,
        num_candidates: int = 20,
        user_token: str = DEFAULT_USER_TOKEN,
        history_token: str = DEFAULT_HISTORY_TOKEN,
        candidate_token: str = DEFAULT_CANDIDATE_TOKEN,
        placeholder_handling: str = "added_tokens",
        item_embedding: str = "cf",
        text_item_prob: float = 0.0,
        soft_token_norm: str = "none",
        generation_repetition_penalty: float = 1.5,
        generation_max_new_tokens: int = 64,
        generation_stop_at_answer: bool = False,
        rank_normalization: str = "sum",
        prompt_layout: str = "paper",
        soft_token_set: str = "both",
        item_table: str = "stage1",
        answer_format: str = "title",
        input_standardization: str = "none",
        train_objective: str = "token",
        listwise_normalization: str = "mean",
        rank_scoring: str = "packed",
        match_weight: float = 0.0,
        match_temperature: float = 0.1,
        user_token_teacher: float = 0.0,
        llm_lora_rank: int = 0,
        llm_lora_alpha: float = 16.0,
        llm_lora_target_modules: list[str] | None = None,
        cf_model_path: str | None = None,
        stage1_path: str | None = None,
        dataset_name: str | None = None,
        allmrec_version: str | None = None,
        **kwargs,
    ):
        self.llm_name_or_path = llm_name_or_path
        self.llm_source = dict(llm_source) if llm_source else None
        self.llm_hidden_size = None if llm_hidden_size is None else int(llm_hidden_size)
        self.llm_vocab_size = None if llm_vocab_size is None else int(llm_vocab_size)
        self.tokenizer_fingerprint = tokenizer_fingerprint
        self.cf_hidden_size = int(cf_hidden_size)
        self.latent_dim = int(latent_dim)
        self.num_items = int(num_items)
        self.cf_config = dict(cf_config) if cf_config is not None else None
        self.cf_max_seq_len = int(cf_max_seq_len)
        self.domain = domain
        self.prompt_style = prompt_style
        self.history_len = int(history_len)
        self.num_candidates = int(num_candidates)
        self.user_token = user_token
        self.history_token = history_token
        self.candidate_token = candidate_token
        self.placeholder_handling = placeholder_handling
        self.item_embedding = item_embedding
        self.text_item_prob = float(text_item_prob)
        self.soft_token_norm = soft_token_norm
        self.generation_repetition_penalty = float(generation_repetition_penalty)
        self.generation_max_new_tokens = int(generation_max_new_tokens)
        self.generation_stop_at_answer = bool(generation_stop_at_answer)
        self.rank_normalization = rank_normalization
        self.prompt_layout = prompt_layout
        self.soft_token_set = soft_token_set
        self.item_table = item_table
        self.answer_format = answer_format
        self.input_standardization = input_standardization
        self.train_objective = train_objective
        self.listwise_normalization = listwise_normalization
        self.rank_scoring = rank_scoring
        self.match_weight = float(match_weight)
        self.match_temperature = float(match_temperature)
        self.user_token_teacher = float(user_token_teacher)
        self.llm_lora_rank = int(llm_lora_rank)
        self.llm_lora_alpha = float(llm_lora_alpha)
        self.llm_lora_target_modules = list(llm_lora_target_modules) if llm_lora_target_modules else None
        self.cf_model_path = cf_model_path
        self.stage1_path = stage1_path
        self.dataset_name = dataset_name
        self.allmrec_version = allmrec_version
        self.validate_fields()
        super().__init__(**kwargs)

    def validate_fields(self) -> None:
        """Raise :class:`ALLMRecConfigError` naming the first bad field."""

        def bad(name: str, what: str):
            raise ALLMRecConfigError(f"ALLMRecConfig.{name}={getattr(self, name)!r} is invalid: {what}")

        if not isinstance(self.llm_name_or_path, str) or not self.llm_name_or_path:
            bad("llm_name_or_path", "give a Hub id, a local folder or an allmrec asset name")
        for name in ("cf_hidden_size", "latent_dim", "cf_max_seq_len", "history_len", "num_candidates", "generation_max_new_tokens"):
            if getattr(self, name) <= 0:
                bad(name, "must be a positive integer")
        for name in ("llm_hidden_size", "llm_vocab_size"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                bad(name, "must be a positive integer or None")
        if self.num_items < 0:
            bad("num_items", "must be >= 0")
        if self.domain not in DOMAINS:
            bad("domain", f"choose one of {', '.join(DOMAINS)}")
        if self.prompt_style not in PROMPT_STYLES:
            bad("prompt_style", f"choose one of {', '.join(PROMPT_STYLES)}")
        tokens = [self.user_token, self.history_token, self.candidate_token]
        if not all(isinstance(t, str) and t.strip() for t in tokens) or len(set(tokens)) != 3:
            bad("user_token", f"the three placeholder strings must be distinct and non-blank, got {tokens}")
        if self.placeholder_handling not in PLACEHOLDER_HANDLING:
            bad("placeholder_handling", f"choose one of {', '.join(PLACEHOLDER_HANDLING)}")
        if not 0.0 <= self.text_item_prob <= 1.0:
            bad("text_item_prob", "must be in [0, 1]")
        if self.item_embedding not in ITEM_EMBEDDING_MODES:
            bad("item_embedding", f"choose one of {', '.join(ITEM_EMBEDDING_MODES)}")
        if self.soft_token_norm not in SOFT_TOKEN_NORMS:
            bad("soft_token_norm", f"choose one of {', '.join(SOFT_TOKEN_NORMS)}")
        if not self.generation_repetition_penalty > 0:
            bad("generation_repetition_penalty", "must be > 0 (1.0 = no penalty)")
        if self.rank_normalization not in RANK_NORMALIZATIONS:
            bad("rank_normalization", f"choose one of {', '.join(RANK_NORMALIZATIONS)}")
        for name, allowed in (("prompt_layout", PROMPT_LAYOUTS), ("input_standardization", INPUT_STANDARDIZATIONS),
                              ("train_objective", TRAIN_OBJECTIVES), ("listwise_normalization", RANK_NORMALIZATIONS),
                              ("rank_scoring", RANK_SCORINGS), ("soft_token_set", SOFT_TOKEN_SETS),
                              ("item_table", ITEM_TABLES), ("answer_format", ANSWER_FORMATS)):
            if getattr(self, name) not in allowed:
                bad(name, f"choose one of {', '.join(allowed)}")
        if not self.match_weight >= 0:
            bad("match_weight", "must be >= 0 (0 = no matching loss)")
        if not self.match_temperature > 0:
            bad("match_temperature", "must be > 0")
        if not 0.0 <= self.user_token_teacher <= 1.0:
            bad("user_token_teacher", "must be a probability in [0, 1]")
        if self.llm_lora_rank < 0:
            bad("llm_lora_rank", "must be >= 0 (0 = frozen LLM, the paper)")
        if not self.llm_lora_alpha > 0:
            bad("llm_lora_alpha", "must be > 0")
        if self.cf_config is not None and "model_type" not in self.cf_config:
            bad("cf_config", "must be the CF model's config dict including its model_type")

    @property
    def placeholder_tokens(self) -> tuple[str, str, str]:
        return (self.user_token, self.history_token, self.candidate_token)


# save_pretrained copies this file (+ siblings) and writes auto_map: a checkpoint carries its own code.
ALLMRecConfig.register_for_auto_class()

__all__ = [
    "ALLMRecConfig",
    "ALLMRecConfigError",
    "ALLMRecCheckpointError",
    "ITEM_EMBEDDING_MODES",
    "PLACEHOLDER_HANDLING",
    "RANK_NORMALIZATIONS",
    "RANK_SCORINGS",
    "INPUT_STANDARDIZATIONS",
    "TRAIN_OBJECTIVES",
]
