"""Scoring a batch of prompts with a causal LM: greedy answers and candidate log-likelihoods.

Works on any ``AutoModelForCausalLM`` (or a PEFT wrapper of one) from ``inputs_embeds``, so A-LLMRec (soft
tokens spliced in) and the text-only baselines (LLM-Only, TALLRec: ``llm.get_input_embeddings()(ids)``)
share one implementation. Importable with only torch + transformers (Hub remote code sibling).

Every function expects a **left-padded** prompt batch, so that every row's last column is its last prompt token.

Two ways to score C candidate answers after one prompt (rank mode, and the listwise training loss):

* :func:`continuation_scores` (``cache``): the prompt runs once with a KV cache, the cache is copied C times and
  the B×C continuations run as one batch. Inference only; memory grows with C × prompt length.
* :func:`packed_continuation_logprobs` (``packed``): one forward pass over ``[prompt][answer 1]…[answer C]``
  with a block attention mask (each answer sees the prompt and itself, never another answer) and positions that
  restart after the prompt for every answer, so each answer is scored exactly as if it followed the prompt
  alone. Differentiable (listwise training uses it) and cheaper than copying the cache on a CPU.
"""

from __future__ import annotations

import inspect
from typing import Sequence

import torch
from transformers import GenerationConfig
from transformers.generation import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    StoppingCriteria,
    StoppingCriteriaList,
)


def _accepts(llm, argument: str) -> bool:
    return argument in inspect.signature(llm.forward).parameters


def _check_left_padded(attention_mask: torch.Tensor) -> None:
    if bool((attention_mask[:, -1] == 0).any()):
        raise ValueError("this needs a left-padded batch (encode_prompts(..., padding_side='left'))")


def positions_from_mask(attention_mask: torch.Tensor) -> torch.LongTensor:
    """Position ids that are right for left and right padding alike (pads get 0 and are masked)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def quote_count_table(tokenizer, vocab_size: int) -> torch.LongTensor:
    """Number of ``"`` characters in every token id (ids past the tokenizer count 0)."""
    n = min(vocab_size, len(tokenizer))
    pieces = tokenizer.batch_decode([[i] for i in range(n)])
    counts = torch.zeros(vocab_size, dtype=torch.long)
    counts[:n] = torch.tensor([p.count('"') for p in pieces], dtype=torch.long)
    return counts


class ClosingQuoteCriteria(StoppingCriteria):
    """Done once a row's generated tokens contain ``quotes`` ``"`` (the answer's opening and closing quote; 1 when
    the prompt already ends with the opening quote, as in the ``copy`` layout)."""

    def __init__(self, quote_counts: torch.Tensor, quotes: int = 2) -> None:
        self.quote_counts = quote_counts
        self.quotes = quotes

    def __call__(self, input_ids: torch.LongTensor, scores=None, **kwargs) -> torch.BoolTensor:
        table = self.quote_counts.to(input_ids.device)
        return table[input_ids.clamp(0, len(table) - 1)].sum(1) >= self.quotes


@torch.no_grad()
def greedy_generate(
    llm,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    eos_token_id: int,
    pad_token_id: int,
    max_new_tokens: int,
    repetition_penalty: float = 1.0,
    quote_counts: torch.Tensor | None = None,
    quotes: int = 2,
) -> torch.LongTensor:
    """Greedy decoding from ``inputs_embeds`` → only the new token ids ``(B, new)``.

    The repetition penalty is our own processor: with ``inputs_embeds`` only, ``input_ids`` holds just the
    generated tokens (so, as in the official code, only they are penalised), but transformers 5.x's built-in
    processor also skips the first <number of left pads> *generated* tokens of each padded row, which makes
    batched and single generation disagree. ``quote_counts`` (:func:`quote_count_table`) stops each row at
    its answer's closing quote.
    """
    _check_left_padded(attention_mask)
    config = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=int(max_new_tokens),
                              eos_token_id=eos_token_id, pad_token_id=pad_token_id)
    processors = LogitsProcessorList(
        [RepetitionPenaltyLogitsProcessor(float(repetition_penalty))] if repetition_penalty != 1.0 else []
    )
    criteria = StoppingCriteriaList([ClosingQuoteCriteria(quote_counts, quotes)] if quote_counts is not None else [])
    return llm.generate(
        inputs_embeds=inputs_embeds, attention_mask=attention_mask.to(inputs_embeds.device), generation_config=config,
        logits_processor=processors, stopping_criteria=criteria,
    )


@torch.no_grad()
def continuation_scores(
    llm,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    continuations: Sequence[Sequence[Sequence[int]]],
    *,
    pad_token_id: int,
    normalization: str = "sum",
) -> torch.Tensor:
    """Log-likelihood of each prompt's C continuations (token id lists) → ``(B, C)``.

    The prompt batch runs **once** with a KV cache; the cache is repeated C times
    (``Cache.batch_repeat_interleave``) and the B×C continuations run in one forward pass. ``normalization``:
    ``sum`` = log P(continuation | prompt), ``mean`` = per-token mean.
    """
    _check_left_padded(attention_mask)
    if normalization not in ("sum", "mean"):
        raise ValueError(f"normalization must be sum or mean, got {normalization!r}")
    n_rows = inputs_embeds.shape[0]
    n_cands = {len(c) for c in continuations}
    if len(continuations) != n_rows or len(n_cands) != 1:
        raise ValueError("continuations must list the same number of candidates for every prompt")
    (n_cand,) = n_cands
    device = inputs_embeds.device
    attention_mask = attention_mask.to(device)
    extra = {"logits_to_keep": 1} if _accepts(llm, "logits_to_keep") else {}
    prompt_out = llm(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                     position_ids=positions_from_mask(attention_mask), use_cache=True, **extra)
    first_logp = torch.log_softmax(prompt_out.logits[:, -1].float(), dim=-1)  # (B, V): predicts token 0
    cache = prompt_out.cache if hasattr(prompt_out, "cache") else prompt_out.past_key_values
    cache.batch_repeat_interleave(n_cand)

    flat = [list(seq) for row in continuations for seq in row]
    lengths = torch.tensor([len(s) for s in flat], device=device)
    if bool((lengths == 0).any()):
        raise ValueError("empty continuation")
    width = int(lengths.max())
    cont = torch.full((len(flat), width), int(pad_token_id), dtype=torch.long)
    for i, s in enumerate(flat):
        cont[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    cont = cont.to(device)
    cont_mask = (torch.arange(width, device=device)[None, :] < lengths[:, None]).long()
    full_mask = torch.cat([attention_mask.repeat_interleave(n_cand, dim=0), cont_mask], dim=1)
    start = attention_mask.sum(1).repeat_interleave(n_cand)[:, None]
    cache_kwarg = "cache" if _accepts(llm, "cache") else "past_key_values"
    out = llm(input_ids=cont, attention_mask=full_mask, position_ids=start + torch.arange(width, device=device)[None, :],
              use_cache=False, **{cache_kwarg: cache})
    # token j > 0 is predicted by continuation position j-1; token 0 by the prompt's last position.
    # log p = logit - logsumexp(logits): never materialises a (B·C, L, V) log-softmax copy.
    logits = out.logits[:, :-1].float()
    logp_rest = logits.gather(-1, cont[:, 1:, None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    logp_first = first_logp.repeat_interleave(n_cand, dim=0).gather(-1, cont[:, :1]).squeeze(-1)
    token_logp = torch.cat([logp_first[:, None], logp_rest], dim=1) * cont_mask
    scores = token_logp.sum(1)
    if normalization == "mean":
        scores = scores / lengths
    return scores.view(n_rows, n_cand)


def pad_continuations(continuations: Sequence[Sequence[Sequence[int]]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``B × C`` token-id lists → ``(ids, mask)`` tensors ``(B, C, L)`` (padding: ``pad_token_id`` / 0)."""
    n_cands = {len(c) for c in continuations}
    if len(n_cands) != 1:
        raise ValueError("continuations must list the same number of candidates for every prompt")
    if any(len(seq) == 0 for row in continuations for seq in row):
        raise ValueError("empty continuation")
    width = max(len(seq) for row in continuations for seq in row)
    (n_cand,) = n_cands
    ids = torch.full((len(continuations), n_cand, width), int(pad_token_id), dtype=torch.long)
    mask = torch.zeros((len(continuations), n_cand, width), dtype=torch.long)
    for b, row in enumerate(continuations):
        for c, seq in enumerate(row):
            ids[b, c, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
            mask[b, c, : len(seq)] = 1
    return ids, mask


def packed_continuation_logprobs(
    llm,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    continuation_ids: torch.LongTensor,
    continuation_mask: torch.Tensor,
) -> torch.Tensor:
    """Per-token log-probabilities of every candidate answer, from **one** forward pass → ``(B, C, L)``.

    ``inputs_embeds`` / ``attention_mask``: the left-padded prompt batch ``(B, T, H)`` / ``(B, T)``;
    ``continuation_ids`` / ``continuation_mask``: ``(B, C, L)`` (:func:`pad_continuations`). The answers' valid
    tokens are packed after the prompt (answer-major, so each answer is contiguous); a 4-D attention mask lets a
    prompt token see the earlier prompt tokens, an answer token the whole prompt plus the earlier tokens of its own
    answer; positions continue from the prompt's length for each answer. Padded positions return 0. Gradients
    flow into ``inputs_embeds`` (soft tokens, LoRA weights): this is what the listwise loss is computed from.
    """
    _check_left_padded(attention_mask)
    device = inputs_embeds.device
    n_rows, t_prompt = attention_mask.shape
    _, n_cand, width = continuation_ids.shape
    prompt_mask = attention_mask.to(device).bool()
    flat_valid = continuation_mask.to(device).bool().reshape(n_rows, n_cand * width)
    k = int(flat_valid.sum(1).max())
    # valid tokens first, in (answer, position) order: a stable sort keeps each answer contiguous and in order
    order = torch.argsort((~flat_valid).to(torch.int8), dim=1, stable=True)[:, :k]
    tokens = continuation_ids.to(device).reshape(n_rows, -1).gather(1, order)
    valid = flat_valid.gather(1, order)
    answer = torch.where(valid, order // width, -1)
    offset = order % width

    embeds = torch.cat([inputs_embeds, llm.get_input_embeddings()(tokens).to(inputs_embeds.dtype)], dim=1)
    prompt_len = prompt_mask.sum(1, keepdim=True)
    positions = torch.cat([positions_from_mask(attention_mask.to(device)), prompt_len + offset], dim=1)

    total = t_prompt + k
    q = torch.arange(total, device=device)
    is_prompt = torch.cat([prompt_mask, torch.zeros_like(valid)], dim=1)  # (B, total) prompt keys
    causal = q[None, :, None] >= q[None, None, :]
    # prompt queries: causal over real prompt keys
    allowed = causal & is_prompt[:, None, :] & (q[None, :, None] < t_prompt)
    # answer queries: every real prompt key + earlier tokens of the same answer
    ans = torch.cat([torch.full((n_rows, t_prompt), -2, device=device, dtype=answer.dtype), answer], dim=1)
    same = (ans[:, :, None] == ans[:, None, :]) & (ans[:, :, None] >= 0) & causal
    allowed = allowed | (is_prompt[:, None, :] & (ans[:, :, None] >= 0)) | same
    allowed = allowed | torch.eye(total, dtype=torch.bool, device=device)[None]  # padding rows see themselves (no NaN)
    bias = torch.zeros(allowed.shape, dtype=embeds.dtype, device=device).masked_fill(~allowed, torch.finfo(embeds.dtype).min)

    out = llm(inputs_embeds=embeds, attention_mask=bias[:, None], position_ids=positions, use_cache=False,
              **({"logits_to_keep": k + 1} if _accepts(llm, "logits_to_keep") else {}))
    logits = out.logits[:, -(k + 1):].float()  # [last prompt position, answer token 0 .. k-1]
    # answer token j is predicted by the last prompt position (j is an answer's first token) or by token j-1
    steps = torch.arange(k, device=device)[None, :].expand(n_rows, k)
    source = torch.where(offset == 0, torch.zeros_like(steps), steps)
    # log p = logit - logsumexp(logits), gathered by flat index: never a (B, K, V) copy of the logits
    vocab = logits.shape[-1]
    picked = logits.reshape(n_rows, -1).gather(1, source * vocab + tokens)
    token_logp = (picked - torch.logsumexp(logits, dim=-1).gather(1, source)) * valid
    flat = torch.zeros((n_rows, n_cand * width), dtype=token_logp.dtype, device=device).scatter(1, order, token_logp)
    return flat.view(n_rows, n_cand, width)


def reduce_scores(token_logp: torch.Tensor, continuation_mask: torch.Tensor, normalization: str) -> torch.Tensor:
    """``(B, C, L)`` token log-probabilities → ``(B, C)`` answer scores: ``sum`` or per-token ``mean``."""
    if normalization not in ("sum", "mean"):
        raise ValueError(f"normalization must be sum or mean, got {normalization!r}")
    scores = token_logp.sum(-1)
    if normalization == "mean":
        scores = scores / continuation_mask.to(scores.device).sum(-1).clamp(min=1)
    return scores


@torch.no_grad()
def packed_continuation_scores(
    llm,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    continuations: Sequence[Sequence[Sequence[int]]],
    *,
    pad_token_id: int,
    normalization: str = "sum",
) -> torch.Tensor:
    """:func:`continuation_scores` computed with one packed forward pass (see the module docstring) → ``(B, C)``."""
    if len(continuations) != inputs_embeds.shape[0]:
        raise ValueError("continuations must list the same number of candidates for every prompt")
    ids, mask = pad_continuations(continuations, pad_token_id)
    token_logp = packed_continuation_logprobs(llm, inputs_embeds, attention_mask, ids, mask)
    return reduce_scores(token_logp, mask, normalization)


__all__ = ["pad_continuations", "packed_continuation_logprobs", "packed_continuation_scores", "reduce_scores",
           "positions_from_mask", "quote_count_table", "ClosingQuoteCriteria", "greedy_generate", "continuation_scores"]
