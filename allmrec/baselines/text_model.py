"""The text-only recommenders of the paper's baselines: LLM-Only (frozen LLM, zero-shot) and TALLRec (LoRA).

Both read the same prompt as A-LLMRec minus the soft tokens (``PromptBuilder(soft_tokens=False)``; default
wording: Figure 6, which Appendix A names for LLM-Only and TALLRec), see the same stored candidates and are
scored by **the same code** as A-LLMRec: :class:`TextOnlyRecommender` offers the interface that
``allmrec.model.inference`` (``rank_scores`` / ``generate_outputs`` / ``evaluate_model``) and
``allmrec.model.training`` (``collate`` / ``validation_hit1``) expect from a stage-2 model; its
``score_candidates`` (shared-prompt KV cache, log P(title + EOS)) and ``generate_answers`` (greedy, repetition
penalty 1.5, optional stop at the closing quote) call :mod:`allmrec.model.llm_scoring`, A-LLMRec's own
implementation, and its ``forward`` (loss on target + EOS only) is
:meth:`~allmrec.model.modeling_allmrec.ALLMRecForRecommendation.forward`. With no placeholder in the prompt,
``embed_prompt`` is the LLM's own token-embedding lookup, so all of it reduces to plain causal-LM scoring.

On disk a TALLRec model is a standard PEFT adapter directory (``adapter_config.json`` with
``base_model_name_or_path`` = the local base-LLM folder, ``adapter_model.safetensors``, peft's ``README.md``),
plus the tokenizer and :data:`SIDECAR_FILE` (prompt settings, dataset, the base LLM's short name), so both
``AutoPeftModelForCausalLM.from_pretrained(dir)`` and ``allmrec evaluate --model dir`` load it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..errors import AllmrecError, CheckpointError
from ..model.modeling_allmrec import ALLMRecForRecommendation, load_llm
from ..model.processing_allmrec import encode_prompts, encode_target
from ..model.prompts import DOMAINS, PROMPT_STYLES, PromptBuilder

SIDECAR_FILE = "allmrec_baseline.json"
TRAINING_LOG = "training_log.json"
MODEL_TYPES = ("tallrec", "llm-only")
#: prefix of ``allmrec evaluate --model llm:NAME`` (LLM-Only)
LLM_PREFIX = "llm:"


@dataclass
class TextOnlyConfig:
    """Settings of a text-only recommender; the field names are those of ``ALLMRecConfig`` that the shared
    inference / training code reads, so both model families go through one code path."""

    model_type: str = field(metadata={"help": "tallrec (LoRA-tuned) or llm-only (frozen, zero-shot)"})
    llm_name_or_path: str = field(metadata={"help": "base LLM as given: Hub id, local folder or allmrec asset name"})
    num_items: int = field(metadata={"help": "items of the catalogue the model is used with (ids 1..num_items)"})
    domain: str = field(default="movie", metadata={"help": "prompt wording: movie, game or item"})
    prompt_style: str = field(default="fig6", metadata={"help": "fig6 (paper Fig. 6, Appendix A), paper or official"})
    history_len: int = field(default=10, metadata={"help": "history titles listed in the prompt (paper: 10)"})
    num_candidates: int = field(default=20, metadata={"help": "candidate titles per prompt (paper: 20)"})
    generation_repetition_penalty: float = field(default=1.5, metadata={"help": "greedy decoding's repetition penalty (official: 1.5)"})
    generation_max_new_tokens: int = field(default=64, metadata={"help": "generation budget in new tokens"})
    generation_stop_at_answer: bool = field(default=False, metadata={"help": "end each answer at its closing quote"})
    rank_normalization: str = field(default="sum", metadata={"help": "rank mode: sum (log P(title+EOS)) or mean per token"})
    rank_scoring: str = field(default="packed", metadata={"help": "rank mode: packed (one forward over the prompt and all answers, as A-LLMRec) or cache (the prompt's KV cache repeated per candidate)"})
    llm_vocab_size: int | None = field(default=None, metadata={"help": "rows of the LLM's embedding table (set on build)"})
    dataset_name: str | None = field(default=None, metadata={"help": "provenance: the prepared dataset trained on"})
    allmrec_version: str | None = field(default=None, metadata={"help": "package version that wrote the model"})
    # Read by the shared inference code: a text-only model has no item embedding and no CF input.
    item_embedding: str | None = field(default=None, metadata={"help": "always None (no soft tokens)"})
    cf_max_seq_len: int = field(default=1, metadata={"help": "unused (no CF model); kept for the shared batch builder"})

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def bad(name: str, what: str):
            raise AllmrecError(f"{SIDECAR_FILE}: {name}={getattr(self, name)!r} is invalid: {what}")

        if self.model_type not in MODEL_TYPES:
            bad("model_type", f"choose one of {', '.join(MODEL_TYPES)}")
        if not isinstance(self.llm_name_or_path, str) or not self.llm_name_or_path:
            bad("llm_name_or_path", "give a Hub id, a local folder or an allmrec asset name")
        if self.domain not in DOMAINS:
            bad("domain", f"choose one of {', '.join(DOMAINS)}")
        if self.prompt_style not in PROMPT_STYLES:
            bad("prompt_style", f"choose one of {', '.join(PROMPT_STYLES)}")
        for name in ("num_items", "history_len", "num_candidates", "generation_max_new_tokens"):
            if int(getattr(self, name)) <= 0:
                bad(name, "must be a positive integer")
        if not self.generation_repetition_penalty > 0:
            bad("generation_repetition_penalty", "must be > 0 (1.0 = no penalty)")
        if self.rank_normalization not in ("sum", "mean"):
            bad("rank_normalization", "choose sum or mean")
        if self.rank_scoring not in ("packed", "cache"):
            bad("rank_scoring", "choose packed or cache")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = SIDECAR_FILE) -> "TextOnlyConfig":
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as e:
            raise CheckpointError(f"{where} is incomplete ({e}); re-save the model with `allmrec train tallrec`") from e


class TextOnlyRecommender(nn.Module):
    """A causal LM (frozen, or a ``PeftModel`` with LoRA) that recommends from a text-only prompt.

    Args:
        model: a ``PreTrainedModel`` (LLM-Only) or a ``PeftModelForCausalLM`` (TALLRec).
        tokenizer: its tokenizer (needs an EOS token; SmolLM2's pad id equals its EOS id, which is fine:
            padding is located by length).
        config: :class:`TextOnlyConfig`.
        item_titles: ``titles[item_id]`` for training batches (``allmrec.model.training.collate``).
    """

    def __init__(self, model, tokenizer, config: TextOnlyConfig, item_titles: Sequence[str] | None = None) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.item_titles = list(item_titles) if item_titles is not None else None
        if tokenizer.eos_token_id is None:
            raise CheckpointError(f"the tokenizer of {config.llm_name_or_path} has no EOS token; the answer needs one")
        config.llm_vocab_size = int(self.llm.get_input_embeddings().weight.shape[0])
        self._llm_gradient_checkpointing = False

    # ------------------------------------------------------------------ the LLM
    @property
    def is_peft(self) -> bool:
        from peft import PeftModel

        return isinstance(self.model, PeftModel)

    @property
    def llm(self):
        """The causal LM that runs (for TALLRec: the base model with the LoRA layers injected in place)."""
        return self.model.get_base_model() if self.is_peft else self.model

    @property
    def device(self) -> torch.device:
        return self.llm.get_input_embeddings().weight.device

    def trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad]

    def enable_llm_gradient_checkpointing(self) -> None:
        """Recompute activations in backward (non-reentrant, so the frozen embeddings need no grad)."""
        llm = self.llm
        if hasattr(llm, "activation_checkpointing_enable"):  # transformers >= 5.x name
            llm.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self._llm_gradient_checkpointing = True

    def prompt_builder(self) -> PromptBuilder:
        c = self.config
        return PromptBuilder(domain=c.domain, style=c.prompt_style, soft_tokens=False, history_len=c.history_len)

    # ------------------------------------------------------------------ what the shared code calls
    def embed_prompt(
        self,
        input_ids: torch.LongTensor,
        item_ids: torch.LongTensor | None = None,
        user_embeds: torch.Tensor | None = None,
        cf_input_ids: torch.LongTensor | None = None,
        user_ids: torch.LongTensor | None = None,
        item_embedding: str | None = None,
    ) -> torch.Tensor:
        """The LLM's token embeddings of ``input_ids``. CF inputs are ignored (there is no CF model); item
        placeholders cannot occur in a text-only prompt, so item ids are an error."""
        if item_ids is not None and bool((item_ids >= 0).any()):
            raise ValueError("a text-only model has no item soft tokens; build prompts with soft_tokens=False")
        embedding = self.llm.get_input_embeddings()
        return embedding(input_ids.to(embedding.weight.device))

    # The training loss is A-LLMRec's forward (cross-entropy on the target + EOS labels only, logits kept from
    # the first labelled position); it reads only self.embed_prompt, self.llm and self._llm_accepts.
    forward = ALLMRecForRecommendation.forward
    _llm_accepts = ALLMRecForRecommendation._llm_accepts

    # Decoding and candidate scoring are A-LLMRec's too (same decoder settings, same packed / KV-cache scorers), so
    # that efficiency and accuracy comparisons measure the models, not the code paths. They read self.embed_prompt,
    # self.llm, self.tokenizer and the config's generation_* / rank_* fields; a text-only config has no
    # prompt_layout or answer_format, so its answers are quoted titles.
    generate_answers = ALLMRecForRecommendation.generate_answers
    score_candidates = ALLMRecForRecommendation.score_candidates
    answer_opens_with_quote = ALLMRecForRecommendation.answer_opens_with_quote
    index_answers = ALLMRecForRecommendation.index_answers
    _quote_counts = ALLMRecForRecommendation._quote_counts

    # ------------------------------------------------------------------ one user (pipeline / CLI)
    @staticmethod
    def _item_id(item: int | str) -> int | None:
        """The catalogue id an item is given as (an int or a digit string), ``None`` for a title."""
        return None if isinstance(item, str) and not item.strip().isdigit() else int(item)

    def _titles_of(self, items: Sequence[int | str], what: str) -> list[str]:
        """Titles for ids (from the catalogue) or titles as given: a text-only model reads nothing but titles."""
        out = []
        for item in items:
            i = self._item_id(item)
            if i is None:
                out.append(item)
                continue
            if self.item_titles is None or not 0 < i < len(self.item_titles):
                raise ValueError(f"{what}: item id {i} needs a catalogue (pass titles instead, or a TALLRec adapter "
                                 f"trained with one)" if self.item_titles is None else f"{what}: unknown item id {i}")
            out.append(self.item_titles[i])
        return out

    def _one_prompt(self, history, candidates):
        hist, cands = self._titles_of(history, "history"), self._titles_of(candidates, "candidates")
        if not hist:
            raise ValueError("history is empty: give at least one item the user interacted with")
        titles = [""] + hist + cands  # a local catalogue: ids 1..len
        ids = list(range(1, len(titles)))
        prompt = self.prompt_builder().build(ids[:len(hist)], ids[len(hist):], titles)
        return encode_prompts(self.tokenizer, [prompt], padding_side="left"), cands, ids[len(hist):], titles

    def recommend(self, history: Sequence[int | str], candidates: Sequence[int | str]) -> list[dict]:
        """Rank ``candidates`` (ids or titles) for one user → ``[{"item_id", "title", "score"}]`` best first
        (``item_id`` is ``None`` for a candidate given as a title)."""
        batch, cands, local, titles = self._one_prompt(history, candidates)
        builder = self.prompt_builder()
        conts = [[encode_target(self.tokenizer, builder.target_text(titles[i])) for i in local]]
        scores = self.score_candidates(batch["input_ids"], batch["attention_mask"], conts)[0].tolist()
        given = [self._item_id(c) for c in candidates]
        ranked = sorted(zip(given, cands, scores), key=lambda x: -x[2])
        return [{"item_id": i, "title": t, "score": float(s)} for i, t, s in ranked]

    def recommend_generate(self, history: Sequence[int | str], candidates: Sequence[int | str]) -> dict:
        """Generate one answer → ``{"answer", "item_id", "title"}`` (the candidate named exactly, else ``None``)."""
        from ..model.matching import match_candidate, parse_answer

        batch, cands, _, _ = self._one_prompt(history, candidates)
        new = self.generate_answers(batch["input_ids"], batch["attention_mask"])
        text = self.tokenizer.decode(new[0], skip_special_tokens=True)
        answer, j = parse_answer(text), match_candidate(text, cands)
        given = [self._item_id(c) for c in candidates]
        return {"answer": answer, "item_id": None if j is None else given[j], "title": None if j is None else cands[j]}


# ---------------------------------------------------------------------------------------------- build / load
def build_llm_only(llm_name: str, num_items: int, domain: str = "movie", prompt_style: str = "fig6",
                   device: str | None = None, dtype: str = "auto", llm=None, tokenizer=None,
                   quantization: str = "none", device_map: str | None = None, **config) -> TextOnlyRecommender:
    """The frozen LLM (``requires_grad`` off, eval mode) as a zero-shot text-only recommender.

    ``dtype`` / ``quantization`` / ``device_map``: see :mod:`allmrec.model.llm_loading`."""
    from ..model.inference import default_device
    from ..model.llm_loading import llm_is_placed, llm_load_kwargs

    device = device or default_device()
    placed = False
    if llm is None:
        kwargs = llm_load_kwargs(dtype, device, quantization, device_map)
        llm, loaded_tok = load_llm(llm_name, **kwargs)
        tokenizer = tokenizer or loaded_tok
        placed = llm_is_placed(kwargs)
    if tokenizer is None:
        raise AllmrecError("build_llm_only: pass the tokenizer together with llm=")
    llm.requires_grad_(False)
    cfg = TextOnlyConfig(model_type="llm-only", llm_name_or_path=llm_name, num_items=num_items, domain=domain,
                         prompt_style=prompt_style, **config)
    model = TextOnlyRecommender(llm, tokenizer, cfg)
    return (model if placed else model.to(torch.device(device))).eval()


def read_sidecar(path: str | Path) -> dict | None:
    """The allmrec sidecar of an adapter directory, or ``None`` for a plain PEFT adapter."""
    file = Path(path) / SIDECAR_FILE
    if not file.is_file():
        return None
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{file} is corrupt ({e}); re-save the model with `allmrec train tallrec`") from e


def _adapter_base_path(path: Path) -> str:
    file = path / "adapter_config.json"
    if not file.is_file():
        raise CheckpointError(f"{path} has no adapter_config.json; it is not a PEFT adapter (run `allmrec train tallrec`)")
    try:
        base = json.loads(file.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{file} is corrupt ({e})") from e
    if not base:
        raise CheckpointError(f"{file} records no base_model_name_or_path; pass llm=<the base LLM>")
    return str(base)


def load_tallrec(path: str | Path, num_items: int | None = None, domain: str | None = None, llm: str | None = None,
                 device: str | None = None, dtype: str = "auto", is_trainable: bool = False,
                 merge_lora: bool = False, quantization: str = "none", device_map: str | None = None) -> TextOnlyRecommender:
    """Load a TALLRec adapter directory (or any causal-LM LoRA adapter) for inference.

    The base LLM is ``llm`` when given, else the short name recorded in the sidecar (resolved again on this
    machine), else ``adapter_config.json``'s ``base_model_name_or_path``. Without a sidecar (a plain PEFT adapter)
    the prompt settings are the defaults and ``num_items`` / ``domain`` come from the caller (the dataset).
    ``merge_lora`` folds the LoRA update into the base weights (``merge_and_unload``): same outputs up to float
    rounding, and inference then costs exactly what the base LLM costs.
    """
    from peft import PeftModel

    from ..model.inference import default_device

    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"TALLRec adapter directory {path} does not exist")
    sidecar = read_sidecar(path) or {}
    base = llm or sidecar.get("llm") or _adapter_base_path(path)
    device = device or default_device()
    from ..model.llm_loading import llm_is_placed, llm_load_kwargs

    load_kwargs = llm_load_kwargs(dtype, device, quantization, device_map)
    base_llm, tokenizer = load_llm(base, **load_kwargs)
    if (path / "tokenizer_config.json").is_file():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path))
    try:
        model = PeftModel.from_pretrained(base_llm, str(path), is_trainable=is_trainable)
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise CheckpointError(f"cannot load the LoRA adapter in {path} onto {base} ({type(e).__name__}: {e})") from e
    if merge_lora:
        if is_trainable:
            raise AllmrecError("load_tallrec: merge_lora and is_trainable exclude each other")
        model = model.merge_and_unload()
    data: dict[str, Any] = {"model_type": "tallrec"}
    data.update(sidecar)
    data["llm_name_or_path"] = base  # what was loaded (the short name when the sidecar has one)
    if "num_items" not in sidecar:
        if num_items is None:
            raise CheckpointError(f"{path} has no {SIDECAR_FILE}; pass num_items (the dataset's) to load a plain adapter")
        data["num_items"] = num_items
        data["domain"] = domain or "movie"
    cfg = TextOnlyConfig.from_dict(data, str(path / SIDECAR_FILE))
    recommender = TextOnlyRecommender(model, tokenizer, cfg)
    return (recommender if llm_is_placed(load_kwargs) else recommender.to(torch.device(device))).eval()


def save_tallrec(model: TextOnlyRecommender, directory: str | Path, extra: dict | None = None, state_dict=None) -> None:
    """Write adapter + tokenizer + sidecar into ``directory`` (the caller makes it atomic).

    ``state_dict``: the recommender's full state gathered under FSDP / DeepSpeed (keys ``model.…``); PEFT picks
    the adapter weights out of it."""
    from .. import __version__

    if not model.is_peft:
        raise AllmrecError("save_tallrec needs a LoRA (PEFT) model")
    directory = Path(directory)
    model.config.allmrec_version = __version__
    if state_dict is not None:
        state_dict = {k[len("model."):]: v for k, v in state_dict.items() if k.startswith("model.")}
    model.model.save_pretrained(str(directory), state_dict=state_dict)
    model.tokenizer.save_pretrained(str(directory))
    from ..utils.io import atomic_write_json

    sidecar = model.config.to_dict()
    sidecar["llm"] = model.config.llm_name_or_path
    sidecar["llm_resolved_path"] = model.model.peft_config["default"].base_model_name_or_path
    sidecar.update(extra or {})
    atomic_write_json(directory / SIDECAR_FILE, sidecar)


__all__ = [
    "SIDECAR_FILE",
    "TRAINING_LOG",
    "LLM_PREFIX",
    "TextOnlyConfig",
    "TextOnlyRecommender",
    "build_llm_only",
    "load_tallrec",
    "save_tallrec",
    "read_sidecar",
]
