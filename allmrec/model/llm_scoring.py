"""Scoring a batch of prompts with a causal LM: greedy answers and candidate log-likelihoods.

Works on any ``AutoModelForCausalLM`` (or a PEFT wrapper of one) from ``inputs_embeds``, so A-LLMRec (soft
tokens spliced in) and the text-only baselines (LLM-Only, TALLRec: ``llm.get_input_embeddings()(ids)``)
share one implementation. Importable with only torch + transformers (Hub remote code sibling).

Both functions expect a **left-padded** batch, so that every row's last column is its last prompt token.
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
    """Done once a row's generated tokens contain two ``"`` (the answer's opening and closing quote)."""

    def __init__(self, quote_counts: torch.Tensor) -> None:
        self.quote_counts = quote_counts

    def __call__(self, input_ids: torch.LongTensor, scores=None, **kwargs) -> torch.BoolTensor:
        table = self.quote_counts.to(input_ids.device)
        return table[input_ids.clamp(0, len(table) - 1)].sum(1) >= 2


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
    criteria = StoppingCriteriaList([ClosingQuoteCriteria(quote_counts)] if quote_counts is not None else [])
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


__all__ = ["positions_from_mask", "quote_count_table", "ClosingQuoteCriteria", "greedy_generate", "continuation_scores"]
