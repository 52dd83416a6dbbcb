"""Turn a generated answer into a candidate: parsing, normalisation, exact and lenient matching.

Pure Python (no torch), shared by A-LLMRec and the text-only baselines (generate mode).

* :func:`parse_answer` takes the **first quoted title** of the output (the prompt asks for one title and
  the target is trained as ``"Title"``); with an opening quote but no closing one, the rest of the first
  line; with no quote at all, the first line.
* :func:`normalize_title` lowercases, collapses whitespace and strips quotes and punctuation at both ends,
  so ``' "Heat (1995)".'`` and ``'heat (1995)'`` compare equal, while inner punctuation (the year in
  parentheses, "Star Wars: Episode IV") still counts.
* :func:`match_candidate` is **exact** matching after normalisation against the candidate titles
  (``None`` = the output names no candidate → counts against ``valid_rate``).
* :func:`lenient_hit` is the authors' ``eval.py`` rule, reproduced to compare with their numbers:
  lowercase, delete ``LLM`` and ``"item title" : ``, keep the span between the first and the last ``"``
  (the whole text when there is no quote, empty with one quote), hit iff the lowercased target title is a
  substring of that span. Never checks the candidate set, so it is ≥ the exact rule.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Sequence

_WS = re.compile(r"\s+")
# quotes and punctuation stripped at the ends only (inner characters are kept)
_END_CHARS = "\"'`“”‘’«»„.,;:!?-–— \t\n"


def normalize_title(text: str) -> str:
    """Lowercase, NFKC, collapse whitespace, strip quotes/punctuation at both ends."""
    t = unicodedata.normalize("NFKC", text).lower()
    t = _WS.sub(" ", t)
    return t.strip(_END_CHARS)


def parse_answer(output: str) -> str:
    """The first quoted title of a generated answer (see the module docstring)."""
    text = output.strip()
    start = text.find('"')
    if start < 0:
        return text.split("\n", 1)[0].strip()
    end = text.find('"', start + 1)
    if end < 0:
        return text[start + 1:].split("\n", 1)[0].strip()
    return text[start + 1:end].strip()


def match_candidate(output: str, candidate_titles: Sequence[str]) -> int | None:
    """Index of the candidate the output names (exact after normalisation), or ``None``.

    When two candidates share a normalised title the first one is returned; the caller decides whether
    that is the target (a duplicate title is a data artefact, not a model error).
    """
    answer = normalize_title(parse_answer(output))
    if not answer:
        return None
    for idx, title in enumerate(candidate_titles):
        if normalize_title(title) == answer:
            return idx
    return None


def lenient_hit(output: str, target_title: str) -> bool:
    """The authors' ``eval.py`` Hit@1 rule (substring of the quoted span; see the module docstring)."""
    pred = output.replace("LLM", "").strip().lower()
    pred = pred.replace('"item title" : ', "")
    if '"' in pred:
        pred = pred[pred.index('"') + 1:pred.rindex('"')]
    return target_title.strip().lower() in pred


__all__ = ["normalize_title", "parse_answer", "match_candidate", "lenient_hit"]
