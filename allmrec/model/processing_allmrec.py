"""Tokenizing A-LLMRec prompts into batches: placeholder tokens, padding, labels.

Importable with only torch + transformers + sibling files (Hub remote code).

Placeholders. The three placeholder strings (``[UserRep]``, ``[HistoryEmb]``, ``[CandidateEmb]``) must
each become exactly one token so the model can find them by ``input_ids == id``:

* ``added_tokens`` (default): they are added to the *tokenizer* as special tokens. Their ids are
  ``len(tokenizer)`` and up, usually ≥ the LLM's vocabulary. The LLM's embedding table is **never resized**
  and never sees these ids: the model replaces them by a safe id before the embedding lookup and then
  overwrites those positions with the projected vectors. So a saved LLM stays untouched, and the
  checkpoint needs no new embedding rows;
* ``existing_tokens``: each string must already be a single token of the tokenizer (reserved tokens).

Batches. Prompt and target are tokenized separately and concatenated (the target never merges with
the prompt's last token; the official code does the same): ``[prompt tokens] [target tokens] [EOS]``.
Training batches are right-padded with labels = -100 everywhere except the target tokens and EOS;
generation / ranking batches are left-padded so every row's last column is its last prompt token.
Padding is located by length, never by id (SmolLM2's pad id equals its EOS id).
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import torch

from .configuration_allmrec import ALLMRecCheckpointError
from .prompts import Prompt

#: A fixed sentence whose token ids identify a tokenizer (stored in the config as a fingerprint).
FINGERPRINT_PROBE = 'This user has watched "Toy Story (1995)", "Heat (1995)" in the previous. The recommendation is "Fargo (1996)"'
IGNORE_INDEX = -100


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 over the probe's token ids plus EOS id: equal fingerprints ⇒ same tokenization here."""
    ids = tokenizer(FINGERPRINT_PROBE, add_special_tokens=False)["input_ids"]
    payload = ",".join(map(str, ids)) + f"|eos={tokenizer.eos_token_id}"
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def setup_placeholder_tokens(tokenizer, tokens: Sequence[str], handling: str = "added_tokens") -> tuple[int, ...]:
    """Make every placeholder string a single token and return their ids (see the module docstring)."""
    if handling == "added_tokens":
        missing = [t for t in tokens if t not in tokenizer.get_vocab()]
        if missing:
            tokenizer.add_tokens(list(missing), special_tokens=True)
    ids = []
    for t in tokens:
        enc = tokenizer(t, add_special_tokens=False)["input_ids"]
        if len(enc) != 1:
            raise ALLMRecCheckpointError(
                f"placeholder {t!r} is {len(enc)} tokens under this tokenizer; with placeholder_handling="
                f"'existing_tokens' each placeholder must be one existing token (or use 'added_tokens')"
            )
        ids.append(int(enc[0]))
    if len(set(ids)) != len(ids):
        raise ALLMRecCheckpointError(f"placeholders {list(tokens)} map to non-distinct token ids {ids}")
    return tuple(ids)


def pad_token_id(tokenizer) -> int:
    """The id written into padded positions (masked out, so any valid id works): pad, else EOS."""
    pid = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pid is None:
        raise ALLMRecCheckpointError("the tokenizer has neither a pad nor an EOS token; set tokenizer.pad_token")
    return int(pid)


def encode_plain_text(tokenizer, text: str) -> list[int]:
    """Token ids of catalogue-derived text in which no string becomes a special or added token.

    ``split_special_tokens=True``: a title containing ``[CandidateEmb]``, ``<|im_end|>``, ``</s>`` or a chat-template
    marker is tokenized as the characters it is, like any other title, so it can neither add a soft-token position
    nor end or reshape the prompt.
    """
    return list(tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])


def special_affixes(tokenizer) -> tuple[list[int], list[int]]:
    """The ids the tokenizer adds before / after a text with ``add_special_tokens=True`` (e.g. Llama's BOS)."""
    probe = "x"
    plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
    full = list(tokenizer(probe, add_special_tokens=True)["input_ids"])
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return full[:start], full[start + len(plain):]
    return [], []


def encode_prompt_ids(tokenizer, prompt: Prompt, affixes: tuple[list[int], list[int]] | None = None) -> list[int]:
    """A prompt's ids: the tokenizer's special prefix, each text piece as plain text, each placeholder as its token."""
    if not prompt.segments:  # a prompt made by hand, without the builder's segments
        return list(tokenizer(prompt.text, add_special_tokens=True)["input_ids"])
    prefix, suffix = affixes if affixes is not None else special_affixes(tokenizer)
    ids = list(prefix)
    for piece, is_placeholder in prompt.segments:
        if is_placeholder:
            token_id = tokenizer.convert_tokens_to_ids(piece)
            if token_id is None or token_id == tokenizer.unk_token_id:
                raise ALLMRecCheckpointError(f"placeholder {piece!r} is not a token of this tokenizer; load the "
                                             "tokenizer through the model (it adds the placeholders)")
            ids.append(int(token_id))
        else:
            ids.extend(encode_plain_text(tokenizer, piece))
    return ids + list(suffix)


def encode_target(tokenizer, text: str) -> list[int]:
    """Token ids of a target / candidate continuation: the text's tokens (plain text, see
    :func:`encode_plain_text`) + EOS."""
    if tokenizer.eos_token_id is None:
        raise ALLMRecCheckpointError("the tokenizer has no EOS token; A-LLMRec needs one to end the answer")
    return encode_plain_text(tokenizer, text) + [int(tokenizer.eos_token_id)]


def _pad_rows(rows: list[list[int]], value: int, side: str) -> torch.Tensor:
    width = max((len(r) for r in rows), default=0)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            if side == "right":
                out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            else:
                out[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
    return out


def encode_prompts(
    tokenizer,
    prompts: Sequence[Prompt],
    *,
    with_targets: bool = False,
    padding_side: str = "left",
) -> dict[str, torch.Tensor]:
    """Tokenize prompts (and their targets) into one padded batch.

    Returns ``input_ids`` / ``attention_mask`` ``(B, T)``, ``item_ids`` ``(B, P)`` (the item behind every
    item placeholder in order, padded with -1), and with ``with_targets`` also ``labels`` ``(B, T)``.
    The prompt is tokenized with the tokenizer's special tokens (a BOS if it adds one), the target
    without, followed by EOS; item text is always plain text (:func:`encode_prompt_ids`).
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    affixes = special_affixes(tokenizer)
    prompt_ids = [encode_prompt_ids(tokenizer, p, affixes) for p in prompts]
    rows, label_rows = [], []
    for p, ids in zip(prompts, prompt_ids):
        ids = list(ids)
        if with_targets:
            if p.target is None:
                raise ValueError("with_targets=True needs every prompt to have a target")
            tgt = encode_target(tokenizer, p.target)
            label_rows.append([IGNORE_INDEX] * len(ids) + tgt)
            ids = ids + tgt
        rows.append(ids)
    pad = pad_token_id(tokenizer)
    batch = {
        "input_ids": _pad_rows(rows, pad, padding_side),
        "attention_mask": _pad_rows([[1] * len(r) for r in rows], 0, padding_side),
        "item_ids": _pad_rows([list(p.item_ids) for p in prompts], -1, "right"),
    }
    if with_targets:
        batch["labels"] = _pad_rows(label_rows, IGNORE_INDEX, padding_side)
    return batch


__all__ = [
    "FINGERPRINT_PROBE",
    "IGNORE_INDEX",
    "tokenizer_fingerprint",
    "setup_placeholder_tokens",
    "pad_token_id",
    "encode_target",
    "encode_plain_text",
    "encode_prompt_ids",
    "special_affixes",
    "encode_prompts",
]
