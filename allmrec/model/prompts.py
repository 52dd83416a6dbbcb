"""The A-LLMRec stage-2 prompt (paper Fig. 3), the authors' verbatim variant, and the text-only prompt of
LLM-Only / TALLRec (paper Fig. 6). Pure Python: no torch, no tokenizer.

A prompt is a string with **placeholder strings** where soft tokens go, plus the item ids those
placeholders stand for, in order of appearance. The model (``modeling_allmrec``) tokenizes the text,
finds the placeholder positions by mask and writes the projected vectors there:

* the user token (``[UserRep]``) first: O_u = F_U(x^u) (paper §4.2.2, "at the beginning of the prompt");
* ``[HistoryEmb]`` right after each quoted history title (the last ``history_len`` = 10 items);
* ``[CandidateEmb]`` right after each of the 20 quoted candidate titles.

Target = the quoted title of the next item; the model appends EOS and puts the loss only on those tokens.

Three wordings (``style``), each per domain (movie/watched/watch, game/played/play, item/bought/buy):

``paper``
    Figure 3's sentence structure written as normal text: ``"T1"[HistoryEmb], "T2"[HistoryEmb]``
    separated by ", ", a space after each sentence, no trailing space; the target starts with a space
    (``' "Title"'``) so that the quote and its leading space form one natural BPE token.
``official``
    The released code's string, byte for byte (``models/a_llmrec_model.py``): no space in
    "representation.This", titles joined by "," with no space, trailing space after "is", target
    ``'"Title"'``. (The official code prepends O_u before BOS; here the user token is the first text
    token, i.e. after a BOS if the tokenizer adds one: see ``modeling_allmrec``.)
``fig6``
    Figure 6, the prompt the paper uses for LLM-Only and TALLRec ("... in the past. Recommend a movie
    for this user to watch next from the following set of movie titles, ..."), same spacing as ``paper``.

Two layouts (``layout``) place the soft tokens:

``paper``
    The user token opens the prompt (``[UserRep] is a user representation. ...``) and each item's soft token
    follows its quoted title (``"T"[HistoryEmb]``), as in Figure 3 and the official code.
``copy``
    Not in the paper. Each item's soft token sits inside the quotes right before its title (``"[CandidateEmb] T"``)
    and the user token is the last prompt token, inside the answer's opening quote
    (``... The recommendation is "[UserRep]``); the answer is ``' Title"'`` + EOS. Two things follow: the position
    of O_u itself predicts the answer's first title token (the shortest path from the CF signal to the choice:
    F_U can point the LM head at the next item's first word), and the answer repeats the candidate list's
    pattern (quote, soft token, title), which is what the copy (induction) heads of a pretrained LM complete, so
    choosing a title is also matching O_u against the O_i before the titles. The words are the style's.

``soft_tokens=False`` drops the user sentence and every placeholder from any style: that is the paper's
LLM-Only prompt ("exactly the same as the prompt shown in Figure 3 without user representation and item
embeddings", §5.2.1) with ``style="paper"``, and the TALLRec / LLM-Only prompt of Appendix A with
``style="fig6"``. The baselines reuse this module.

Note: Figure 3 itself is an image; its words (" is a user representation. This user has watched ... in
the previous. Recommend one next movie for this user to watch next from the following movie title set,
... The recommendation is") are the same as the released code's, which is why ``paper`` and
``official`` differ only in spacing and separators.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

DOMAINS = ("movie", "game", "item")
PROMPT_STYLES = ("paper", "official", "fig6")
PROMPT_LAYOUTS = ("paper", "copy")
#: what the LLM answers: the quoted title (paper) or the label of the chosen candidate (not in the paper)
ANSWER_FORMATS = ("title", "index")
#: candidate labels of the index answer, in candidate order
INDEX_LABELS = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
#: which soft tokens a prompt carries (paper Table 9 ablations): both, only the user token, only the item tokens
SOFT_TOKEN_SETS = ("both", "user", "items")

DEFAULT_USER_TOKEN = "[UserRep]"
DEFAULT_HISTORY_TOKEN = "[HistoryEmb]"
DEFAULT_CANDIDATE_TOKEN = "[CandidateEmb]"


@dataclass(frozen=True)
class DomainWords:
    """The words that change per dataset (paper Fig. 3 caption; official code per Amazon category)."""

    noun: str  # movie / game / item
    article: str  # "a" / "an" before the noun (Fig. 6: "Recommend a movie")
    past: str  # watched / played / bought
    verb: str  # watch / play / buy


DOMAIN_WORDS: dict[str, DomainWords] = {
    "movie": DomainWords("movie", "a", "watched", "watch"),
    "game": DomainWords("game", "a", "played", "play"),
    "item": DomainWords("item", "an", "bought", "buy"),
}


@dataclass(frozen=True)
class Prompt:
    """One rendered prompt.

    ``text`` contains the placeholder strings (when built with soft tokens); ``item_ids`` lists the item
    of every item placeholder in order of appearance (history first, then candidates), which is the
    order the model fills them in; ``target`` is the text the LLM should produce (without EOS), or
    ``None`` when the next item is unknown (inference).
    """

    text: str
    history_ids: tuple[int, ...]
    candidate_ids: tuple[int, ...]
    target: str | None = None
    has_user_token: bool = True
    has_item_tokens: bool = True
    #: the text cut into ``(piece, is_placeholder)``: placeholders are the ones the builder wrote, never a string that
    #: happens to occur in a title, so catalogue text cannot add or remove soft-token positions (see ``encode_prompts``)
    segments: tuple[tuple[str, bool], ...] = ()

    @property
    def item_ids(self) -> tuple[int, ...]:
        return self.history_ids + self.candidate_ids if self.has_item_tokens else ()


class PromptBuilder:
    """Renders prompts for one domain and style.

    Args:
        domain: ``movie``, ``game`` or ``item`` (the prepared dataset's ``domain``).
        style: ``paper``, ``official`` or ``fig6`` (see the module docstring).
        soft_tokens: include the user token and the item placeholders (A-LLMRec, MLP-LLM); ``False``
            for the text-only baselines.
        history_len: how many of the most recent history items are listed (paper: 10).
        layout: ``paper`` (user token first, item token after each title) or ``copy`` (item token before each
            title, user token right before the answer); see the module docstring.
        answer_format: ``title`` (the paper: the answer is the candidate's quoted title) or ``index`` (each candidate
            is labelled ``(A)``..``(T)`` and the answer is its label: one token decides the choice, so ranking and
            training score 20 one-token answers instead of 20 titles; not in the paper).
        token_set: with ``soft_tokens``: ``both`` (A-LLMRec), ``user`` (no item soft tokens: paper Table 9 "w/o joint
            embedding") or ``items`` (no user token: Table 9 "w/o user representation").
        user_token / history_token / candidate_token: the placeholder strings.
    """

    def __init__(
        self,
        domain: str = "movie",
        style: str = "paper",
        soft_tokens: bool = True,
        history_len: int = 10,
        user_token: str = DEFAULT_USER_TOKEN,
        history_token: str = DEFAULT_HISTORY_TOKEN,
        candidate_token: str = DEFAULT_CANDIDATE_TOKEN,
        layout: str = "paper",
        token_set: str = "both",
        answer_format: str = "title",
    ) -> None:
        if domain not in DOMAIN_WORDS:
            raise ValueError(f"prompt domain {domain!r} is unknown; choose one of {', '.join(DOMAINS)}")
        if style not in PROMPT_STYLES:
            raise ValueError(f"prompt style {style!r} is unknown; choose one of {', '.join(PROMPT_STYLES)}")
        if layout not in PROMPT_LAYOUTS:
            raise ValueError(f"prompt layout {layout!r} is unknown; choose one of {', '.join(PROMPT_LAYOUTS)}")
        if answer_format not in ANSWER_FORMATS:
            raise ValueError(f"answer format {answer_format!r} is unknown; choose one of {', '.join(ANSWER_FORMATS)}")
        if token_set not in SOFT_TOKEN_SETS:
            raise ValueError(f"soft-token set {token_set!r} is unknown; choose one of {', '.join(SOFT_TOKEN_SETS)}")
        if history_len < 1:
            raise ValueError(f"history_len must be >= 1, got {history_len}")
        tokens = (user_token, history_token, candidate_token)
        if soft_tokens and (len(set(tokens)) != 3 or not all(tokens)):
            raise ValueError(f"the three placeholder strings must be distinct and non-empty, got {tokens}")
        self.domain = domain
        self.style = style
        self.soft_tokens = soft_tokens
        self.history_len = history_len
        self.user_token = user_token
        self.history_token = history_token
        self.candidate_token = candidate_token
        self.layout = layout if soft_tokens else "paper"  # without soft tokens both layouts are the same text
        self.words = DOMAIN_WORDS[domain]
        self.answer_format = answer_format
        self.with_user = soft_tokens and token_set in ("both", "user")
        self.with_items = soft_tokens and token_set in ("both", "items")

    # ------------------------------------------------------------------ pieces
    @property
    def separator(self) -> str:
        return "," if self.style == "official" else ", "

    def _list(self, titles: Sequence[str], token: str) -> str:
        if not self.with_items:
            return self.separator.join(f'"{t}"' for t in titles)
        if self.layout == "copy":  # the title follows the soft token as the answer follows the user token
            return self.separator.join(f'"{token} {t}"' for t in titles)  # ' Word' tokens, as in the answer
        return self.separator.join(f'"{t}"{token}' for t in titles)

    def _labelled_list(self, titles: Sequence[str], token: str) -> str:
        """Index answers: every candidate carries its label. In the copy layout the label comes *directly* after the
        candidate's soft token (``[CandidateEmb]B) "Title"``) and the prompt ends with the user token, so the answer
        completes the one-back pattern an induction head copies: the token that followed the O_i matching O_u.
        (A label behind ``" ("`` would need a two-back match, which a small LLM's heads were not found to make.)"""
        parts = []
        for label, t in zip(INDEX_LABELS, titles):
            if not self.with_items:
                parts.append(f'({label}) "{t}"')
            elif self.layout == "copy":
                parts.append(f'{token}{label}) "{t}"')
            else:
                parts.append(f'({label}) "{t}"{token}')
        return self.separator.join(parts)

    def candidate_answers(self, candidate_ids: Sequence[int], titles: Sequence[str]) -> list[str]:
        """The answer text of every candidate, in order (EOS is appended by the tokenizing code)."""
        if self.answer_format == "index":
            return list(INDEX_LABELS[:len(candidate_ids)])
        return [self.target_text(titles[int(c)]) for c in candidate_ids]

    def resolve_answer(self, text: str, candidate_titles: Sequence[str]) -> str:
        """A generated answer as the quoted title it names: index answers name a label (``"B"``, ``"B)"``, ``"(B"``),
        returned as that candidate's quoted title so that title matching applies; anything else is returned as is."""
        if self.answer_format != "index":
            return text
        m = re.match(r"\s*\(?([A-Z])(?![A-Za-z])", text)
        if m and INDEX_LABELS.index(m.group(1)) < len(candidate_titles):
            return f'"{candidate_titles[INDEX_LABELS.index(m.group(1))]}"'
        return text

    def target_text(self, title: str) -> str:
        """What the LLM should emit for ``title`` (EOS is appended by the tokenizing code)."""
        if self.soft_tokens and self.layout == "copy":  # the prompt ends with the opening quote + user token
            return f' {title}"' if self.with_user or self.with_items else f'{title}"'
        return f'"{title}"' if self.style == "official" else f' "{title}"'

    def _sentences(self, history: str, candidates: str) -> str:
        w = self.words
        if self.style == "fig6":
            return (
                f"This user has {w.past} {history} in the past. Recommend {w.article} {w.noun} for this user to "
                f"{w.verb} next from the following set of {w.noun} titles, {candidates}. The recommendation is"
            )
        body = (
            f"This user has {w.past} {history} in the previous. Recommend one next {w.noun} for this user to "
            f"{w.verb} next from the following {w.noun} title set, {candidates}. The recommendation is"
        )
        return body + " " if self.style == "official" else body

    def _user_sentence(self) -> str:
        if not self.with_user or self.layout == "copy":
            return ""
        # official: ' is a user representation.' directly followed by 'This user ...' (no space)
        return f"{self.user_token} is a user representation." + ("" if self.style == "official" else " ")

    # ------------------------------------------------------------------ public
    def build(
        self,
        history_ids: Sequence[int],
        candidate_ids: Sequence[int],
        titles: Sequence[str],
        target_id: int | None = None,
    ) -> Prompt:
        """Render the prompt for one user.

        Args:
            history_ids: the user's items, oldest first; only the last ``history_len`` are listed.
            candidate_ids: the candidate items in the order they are shown (stored order at evaluation).
            titles: ``titles[item_id]`` (index 0 = padding).
            target_id: the next item (training); its quoted title becomes ``Prompt.target``.
        """
        hist = tuple(int(i) for i in list(history_ids)[-self.history_len:])
        cands = tuple(int(i) for i in candidate_ids)
        if not cands:
            raise ValueError("a prompt needs at least one candidate item")
        if target_id is not None and int(target_id) not in cands:
            raise ValueError(f"target item {target_id} is not among the candidates {list(cands)}")
        if self.answer_format == "index" and len(cands) > len(INDEX_LABELS):
            raise ValueError(f"index answers label at most {len(INDEX_LABELS)} candidates, got {len(cands)}")
        # Rendered with a marker per title first, so that only the builder's own placeholders are cut out below;
        # the titles (untrusted catalogue text) are put back into the text pieces afterwards, never re-scanned.
        shown = [titles[i] for i in hist] + [titles[i] for i in cands]
        markers = [f"\x00{k}\x00" for k in range(len(shown))]
        candidate_list = (self._labelled_list if self.answer_format == "index" else self._list)(
            markers[len(hist):], self.candidate_token)
        text = self._user_sentence() + self._sentences(self._list(markers[:len(hist)], self.history_token), candidate_list)
        if self.answer_format == "index":
            if self.with_user and self.layout == "copy":
                # the answer is the label right after the user token, as each label follows its candidate's O_i
                text = text.rstrip() + f" {self.user_token}"
            else:  # the answer is the label after "(" (the list writes "(B)" where no soft token precedes it)
                text = text.rstrip() + " ("
        elif self.soft_tokens and self.layout == "copy":
            # the user token is the last prompt token; the answer (' "Title"') follows it as a title follows O_i
            text = text.rstrip() + ' "' + (self.user_token if self.with_user else "")
        segments = self._segments(text, shown)
        if target_id is None:
            target = None
        elif self.answer_format == "index":
            target = INDEX_LABELS[cands.index(int(target_id))]
        else:
            target = self.target_text(titles[int(target_id)])
        return Prompt(text="".join(piece for piece, _ in segments), history_ids=hist, candidate_ids=cands,
                      target=target, has_user_token=self.with_user, has_item_tokens=self.with_items,
                      segments=segments)

    def _segments(self, marked: str, shown: Sequence[str]) -> tuple[tuple[str, bool], ...]:
        placeholders = (((self.user_token,) if self.with_user else ())
                        + ((self.history_token, self.candidate_token) if self.with_items else ()))
        pattern = "(" + "|".join(re.escape(t) for t in placeholders) + ")" if placeholders else None
        parts = re.split(pattern, marked) if pattern else [marked]
        fill = re.compile("\x00(\\d+)\x00")
        out = []
        for k, part in enumerate(parts):
            if k % 2 == 1:  # re.split with one group: odd parts are the separators (placeholders)
                out.append((part, True))
            elif part:
                out.append((fill.sub(lambda m: shown[int(m.group(1))], part), False))
        return tuple(out)

    def build_genre(self, history_ids: Sequence[int], titles: Sequence[str], top_k: int = 3) -> Prompt:
        """The favourite-genre question of paper §5.4.4 / Figure 4 for one user: the same history (titles with their
        soft tokens, the user token first) followed by a request for the ``top_k`` genres the user enjoys, instead
        of the candidate list. Used for every layout: the question has no answer position to match."""
        hist = tuple(int(i) for i in list(history_ids)[-self.history_len:])
        if not hist:
            raise ValueError("a genre prompt needs at least one history item")
        w = self.words
        shown = [titles[i] for i in hist]
        markers = [f"\x00{k}\x00" for k in range(len(shown))]
        history = self.separator.join(f'"{m}"{self.history_token}' if self.with_items else f'"{m}"' for m in markers)
        user = f"{self.user_token} is a user representation. " if self.with_user else ""
        text = (f"{user}This user has {w.past} {history} in the previous. Please give me the {top_k} {w.noun} genres "
                f"this user would enjoy most, separated by commas. The genres are:")
        segments = self._segments(text, shown)
        return Prompt(text="".join(piece for piece, _ in segments), history_ids=hist, candidate_ids=(),
                      target=None, has_user_token=self.with_user, has_item_tokens=self.with_items, segments=segments)

    def build_from_titles(self, history_titles: Sequence[str], candidate_titles: Sequence[str]) -> Prompt:
        """Render a text-only prompt from titles (no ids): only valid without soft tokens."""
        if self.soft_tokens:
            raise ValueError("soft-token prompts need item ids; use build()")
        catalogue = [""] + list(history_titles) + list(candidate_titles)
        n = len(history_titles)
        return self.build(range(1, n + 1), range(n + 1, len(catalogue)), catalogue)


__all__ = [
    "Prompt",
    "PromptBuilder",
    "DomainWords",
    "DOMAIN_WORDS",
    "DOMAINS",
    "PROMPT_STYLES",
    "PROMPT_LAYOUTS",
    "SOFT_TOKEN_SETS",
    "ANSWER_FORMATS",
    "INDEX_LABELS",
    "DEFAULT_USER_TOKEN",
    "DEFAULT_HISTORY_TOKEN",
    "DEFAULT_CANDIDATE_TOKEN",
]
