"""Favourite-genre prediction (paper §5.4.4, Figure 4): can the LLM *say* what the CF signal knows?

The paper shows A-LLMRec and LLM-Only a user's history and asks for the genres the user enjoys, and reads the
answers by eye. Here the answers are scored: on a dataset whose item descriptions are genre labels (ml-100k:
``Description: Comedy, Drama``) each user's **top-k genres** are the k labels most frequent in the user's whole
history (ties: alphabetical), and a generated answer is read for the genre labels it names, in order of first
mention. Per user:

* ``precision@k`` = |first k named genres ∩ top-k| / (number named, at most k); 0 when none is named;
* ``recall@k`` = |first k named genres ∩ top-k| / |top-k|;
* ``valid`` = 1 when the answer names at least one real genre label.

``allmrec genres --model M --data D --out F`` runs it for an A-LLMRec checkpoint or ``llm:NAME`` (LLM-Only: the
same question without soft tokens) and writes the averages, their bootstrap intervals and a few examples.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import AllmrecError, DataError

DESCRIPTION = re.compile(r"Description:\s*(.*)$", re.S)


def item_genres(texts: Sequence[str]) -> list[tuple[str, ...]]:
    """Genre labels per item from the prepared ``text`` field (``"Title: ..., Description: A, B"``); row 0 = padding."""
    out: list[tuple[str, ...]] = []
    for text in texts:
        m = DESCRIPTION.search(text or "")
        labels = [g.strip() for g in m.group(1).split(",")] if m else []
        out.append(tuple(g for g in labels if g))
    return out


def genre_vocabulary(genres: Sequence[Sequence[str]]) -> list[str]:
    return sorted({g for labels in genres for g in labels})


def check_genre_labels(genres: Sequence[Sequence[str]], path: str, max_words: int = 3, max_labels: int = 60) -> list[str]:
    """The label vocabulary, or a DataError when the descriptions do not look like genre labels."""
    vocab = genre_vocabulary(genres)
    if not vocab:
        raise DataError(f"{path}: no item has a description, so there are no genre labels to score against")
    long = [g for g in vocab if len(g.split()) > max_words]
    if long or len(vocab) > max_labels:
        raise DataError(f"{path}: item descriptions are free text, not genre labels (e.g. {(long or vocab)[0][:60]!r}); "
                        "the genre task needs a dataset whose descriptions list genres (ml-100k, RecBole 'class')")
    return vocab


def user_top_genres(history: Sequence[int], genres: Sequence[Sequence[str]], k: int = 3) -> list[str]:
    """The ``k`` genre labels most frequent over the items of ``history`` (ties broken alphabetically)."""
    counts = Counter(g for item in history if int(item) > 0 for g in genres[int(item)])
    return [g for g, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


def named_genres(text: str, vocabulary: Sequence[str]) -> list[str]:
    """Genre labels ``text`` names, in order of first mention (case-insensitive, whole words; the longest label
    wins where two overlap, e.g. ``Film-Noir`` over ``Film``)."""
    found: list[tuple[int, int, str]] = []
    lowered = text.lower()
    for g in vocabulary:
        for m in re.finditer(r"(?<![\w-])" + re.escape(g.lower()) + r"(?![\w-])", lowered):
            found.append((m.start(), -len(g), g))
    found.sort()
    out, covered_until = [], -1
    for start, neg_len, g in found:
        if start < covered_until:  # inside a longer label already taken
            continue
        covered_until = start - neg_len
        if g not in out:
            out.append(g)
    return out


def genre_scores(outputs: Sequence[str], histories: Sequence[Sequence[int]], genres: Sequence[Sequence[str]],
                 k: int = 3, vocab: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Per-user ``precision@k``, ``recall@k`` and ``valid`` (see the module docstring); ``vocab``: the label
    vocabulary when the caller has it already (default: from ``genres``)."""
    if len(outputs) != len(histories):
        raise ValueError(f"{len(outputs)} outputs for {len(histories)} users")
    vocab = genre_vocabulary(genres) if vocab is None else vocab
    precision, recall, valid = [], [], []
    for text, history in zip(outputs, histories):
        top = set(user_top_genres(history, genres, k))
        named = named_genres(text, vocab)[:k]
        hits = len(top.intersection(named))
        precision.append(hits / len(named) if named else 0.0)
        recall.append(hits / len(top) if top else 0.0)
        valid.append(1.0 if named else 0.0)
    return {f"precision@{k}": np.asarray(precision), f"recall@{k}": np.asarray(recall), "valid": np.asarray(valid)}


# ---------------------------------------------------------------------------------------------- generation
def genre_outputs(model, rows: Mapping[str, Any], titles: Sequence[str], k: int = 3, batch_size: int = 8,
                  max_new_tokens: int = 24, progress: bool = True) -> list[str]:
    """Greedy answers to the genre question (``PromptBuilder.build_genre``) for every row, one string each."""
    from tqdm.auto import tqdm

    from ..model.inference import _RowEncoder, _batches

    class _GenreEncoder(_RowEncoder):
        def prompts(self, rows, idx):
            return [self.builder.build_genre(rows["history"][i], self.titles, top_k=k) for i in idx]

    enc = _GenreEncoder(model, titles)
    out: list[str] = []
    for idx in tqdm(list(_batches(len(rows["user_id"]), batch_size)), desc="genres", unit="batch", disable=not progress,
                    leave=False):
        b = enc.batch(rows, idx)
        new = model.generate_answers(b["input_ids"], b["attention_mask"], item_ids=b["item_ids"],
                                     cf_input_ids=b["cf_input_ids"], user_ids=b.get("user_ids"),
                                     max_new_tokens=max_new_tokens, stop_at_answer=False)
        out.extend(t.strip() for t in model.tokenizer.batch_decode(new, skip_special_tokens=True))
    return out


def evaluate_genres(model, dataset, split: str = "test", max_users: int | None = None, seed: int = 0, k: int = 3,
                    n_examples: int = 5, model_name: str = "", command: str | None = None,
                    progress: bool = True) -> dict[str, Any]:
    """Ask ``model`` the genre question for the (seeded subset of) users of ``split`` → a results dict."""
    from .results import command_line
    from .statistics import metric_intervals
    from .subsets import subset_rows

    genres = item_genres(dataset.texts)
    vocab = check_genre_labels(genres, str(dataset.path))
    rows = subset_rows(dataset.eval_rows(split), max_users, seed)
    if not len(rows["user_id"]):
        raise AllmrecError(f"{dataset.path}/{split} has no users to ask")
    start = time.perf_counter()
    model.eval()
    outputs = genre_outputs(model, rows, dataset.titles, k=k, progress=progress)
    per_user = genre_scores(outputs, rows["history"], genres, k, vocab)
    return {
        "task": "favourite-genre prediction (paper §5.4.4, Figure 4)",
        "model": model_name,
        "dataset": dataset.name,
        "split": split,
        "n_users": len(outputs),
        "k": k,
        "metrics": {name: float(v.mean()) for name, v in per_user.items()},
        "intervals": metric_intervals(per_user),
        "per_user": {"user_id": [int(u) for u in rows["user_id"]], **{n: v.tolist() for n, v in per_user.items()}},
        "examples": [
            {"user_id": int(rows["user_id"][i]), "top_genres": user_top_genres(rows["history"][i], genres, k),
             "output": outputs[i], "named": named_genres(outputs[i], vocab)[:k]}
            for i in range(min(n_examples, len(outputs)))
        ],
        "command": command or command_line(),
        "timings": {"generate": round(time.perf_counter() - start, 3)},
    }


def register(sub) -> None:
    p = sub.add_parser(
        "genres",
        help="favourite-genre prediction (paper Fig. 4): ask a model which genres a user enjoys and score the answer",
        description=__doc__.split("\n\n")[0] + "\n\nScores the answers against each user's most-watched genres "
                    "(precision@k / recall@k / share of answers naming a real genre).",
    )
    p.add_argument("--model", required=True, help="A-LLMRec checkpoint directory or llm:NAME (LLM-Only)")
    p.add_argument("--data", required=True, help="prepared dataset whose item descriptions are genre labels (ml-100k)")
    p.add_argument("--out", required=True, help="results JSON to write")
    p.add_argument("--split", default="test", choices=["test", "valid"], help="whose histories to use (default: test)")
    p.add_argument("--max-users", type=int, default=None, help="seeded subset of this many users (default: all)")
    p.add_argument("--subset-seed", type=int, default=0, help="seed of the --max-users subset (default: 0)")
    p.add_argument("--k", type=int, default=3, help="genres asked for and compared against (default: 3)")
    p.add_argument("--examples", type=int, default=5, help="answers kept in the results file (default: 5)")
    p.set_defaults(func=run_genres)


def run_genres(args) -> int:
    from ..data.dataset import PreparedDataset
    from ..pipeline import load_recommender
    from ..utils.io import atomic_write_json

    if args.k <= 0 or (args.max_users is not None and args.max_users <= 0):
        raise AllmrecError("--k and --max-users must be positive")
    dataset = PreparedDataset.load(args.data)
    model = load_recommender(args.model)
    results = evaluate_genres(model, dataset, split=args.split, max_users=args.max_users, seed=args.subset_seed,
                              k=args.k, n_examples=args.examples, model_name=str(args.model))
    atomic_write_json(args.out, results)
    m = results["metrics"]
    print(f"{args.model}: precision@{args.k} {m[f'precision@{args.k}']:.3f}, recall@{args.k} {m[f'recall@{args.k}']:.3f}, "
          f"named a real genre {m['valid']:.1%} ({results['n_users']} users)")
    for ex in results["examples"][:3]:
        print(f"  user {ex['user_id']}: top {ex['top_genres']} | answer {ex['output'][:80]!r}")
    print(f"results written to {args.out}")
    return 0


__all__ = ["item_genres", "genre_vocabulary", "user_top_genres", "named_genres", "genre_scores", "genre_outputs",
           "evaluate_genres", "register", "run_genres"]
