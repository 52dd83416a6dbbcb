"""Load a prepared dataset directory (the output of ``allmrec data prepare``).

On-disk layout (written atomically by :mod:`allmrec.data.prepare`)::

    DIR/
      manifest.json        every option, input files with sha256, counts, package version
      items.jsonl          one line per item: item_id, original_id, title, text (human-readable copy)
      dataset/             a ``datasets.DatasetDict`` (``save_to_disk``) with the splits below

Splits of the ``DatasetDict``. Item ids are ``1..num_items`` (0 is padding); user ids are
``1..num_users``:

``items``
    ``item_id`` int, ``original_id`` str, ``title`` str, ``text`` str (the SBERT input),
    ``train_count`` int (interactions in the training split), ``popularity`` str (``warm`` = top
    35 % by ``train_count``, ``cold`` = bottom 35 %, else ``mid``).
``users``
    ``user_id`` int, ``original_id`` str, ``train`` list[int] (time-ordered training items,
    untruncated), ``valid`` int, ``test`` int (0 when the user has fewer than 3 interactions).
``valid`` / ``test``
    one row per user with a valid *and* a test item: ``user_id``, ``history`` list[int]
    (valid: ``train``; test: ``train + [valid]``; untruncated, consumers keep the last
    ``maxlen``), ``target`` int, ``candidates`` list[int] (20 ids: the target and 19 negatives
    the user never interacted with, shuffled, seeded), ``target_index`` int (position of the
    target in ``candidates``), ``scenario`` str (popularity label of the target: warm/mid/cold).
``cold_user_test``
    users with exactly ``cold_user_len`` (3) interactions, **held out of every other split** (paper
    §5.2.3): ``history`` = their first items, ``target`` = their last; same columns as ``test``,
    ``scenario`` = ``cold_user``. Often empty (e.g. ml-100k has no user with 3 ratings).
``few_shot``
    ``k`` int, ``user_ids`` list[int]: seeded subsets of training users (paper §5.2.4).

Candidates are drawn once, here, and never again: every model is evaluated on exactly these.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ..errors import DataError

EVAL_SPLITS = ("valid", "test", "cold_user_test")


@dataclass
class PreparedDataset:
    """A prepared dataset; cheap to construct, splits load lazily (memory-mapped Arrow)."""

    path: Path
    manifest: dict = field(repr=False)

    @classmethod
    def load(cls, path: str | Path) -> "PreparedDataset":
        """A prepared directory, or ``hub:OWNER/NAME[@REVISION]`` (downloaded once into the allmrec cache and checked
        against its pushed fingerprint, see :mod:`allmrec.data.hub`)."""
        from .hub import is_hub_source, pull_dataset

        if is_hub_source(path):
            path = pull_dataset(str(path))
        path = Path(path)
        mf = path / "manifest.json"
        if not mf.is_file() or not (path / "dataset").is_dir():
            raise DataError(
                f"{path} is not a prepared dataset (no manifest.json or dataset/); create it with "
                f"`allmrec data prepare --source ... --out {path}`"
            )
        try:
            manifest = json.loads(mf.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataError(f"{mf} is corrupt ({e}); re-run `allmrec data prepare`") from e
        return cls(path=path, manifest=manifest)

    # ------------------------------------------------------------------ splits
    @cached_property
    def splits(self):
        from datasets import load_from_disk

        return load_from_disk(str(self.path / "dataset"))

    def split(self, name: str):
        if name not in self.splits and name in self.manifest.get("empty_splits", []):
            # saved without rows (datasets cannot reload a 0-shard split): same columns, no rows
            src = self.splits["test"] if name in EVAL_SPLITS else self.splits["users"]
            return src.select([]).flatten_indices()
        if name not in self.splits:
            raise DataError(f"{self.path} has no split '{name}'; available: {', '.join(self.splits)}")
        return self.splits[name]

    @property
    def name(self) -> str:
        return self.manifest.get("name", self.path.name)

    @property
    def domain(self) -> str:
        """Prompt wording family: ``movie``, ``game`` or ``item`` (see the stage-2 prompt builder)."""
        return self.manifest["options"].get("domain", "item")

    @property
    def num_items(self) -> int:
        return int(self.manifest["counts"]["items"])

    @property
    def num_users(self) -> int:
        return int(self.manifest["counts"]["users"])

    # ------------------------------------------------------------------ items
    @cached_property
    def titles(self) -> list[str]:
        """``titles[item_id]``; index 0 (padding) is the empty string."""
        return [""] + list(self.split("items")["title"])

    @cached_property
    def texts(self) -> list[str]:
        """``texts[item_id]``: the SBERT input text of each item; index 0 is empty."""
        return [""] + list(self.split("items")["text"])

    @cached_property
    def item_popularity(self) -> np.ndarray:
        """``train_count`` per item id (index 0 = 0)."""
        return np.concatenate([[0], np.asarray(self.split("items")["train_count"], dtype=np.int64)])

    # ------------------------------------------------------------------ users
    @cached_property
    def train_sequences(self) -> list[np.ndarray]:
        """``train_sequences[user_id - 1]``: time-ordered training items of each user."""
        values, offsets = _list_column(self.split("users"), "train")
        return [values[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]

    def eval_rows(self, split: str = "test") -> dict[str, np.ndarray | list]:
        """Columns of an evaluation split as arrays: user_id, target, target_index, candidates (N, C),
        history (list of arrays), scenario (list of str). Read straight from Arrow (no Python lists)."""
        ds = self.split(split)
        hv, ho = _list_column(ds, "history")
        return {
            "user_id": _column(ds, "user_id"),
            "target": _column(ds, "target"),
            "target_index": _column(ds, "target_index"),
            "candidates": self.candidates(split),
            "history": [hv[ho[i]:ho[i + 1]] for i in range(len(ho) - 1)],
            "scenario": ds.data.column("scenario").to_pylist(),
        }

    def candidates(self, split: str = "test") -> np.ndarray:
        """``(N, C)`` stored candidate ids of a split."""
        ds = self.split(split)
        values, offsets = _list_column(ds, "candidates")
        n = len(offsets) - 1
        return values.reshape(n, -1) if n else np.zeros((0, self.manifest["options"].get("num_candidates", 20)), np.int64)

    def candidate_fingerprint(self, split: str = "test") -> str:
        """sha256 over (user_id, candidates) of a split: two results with the same fingerprint were
        scored on identical candidate sets."""
        ds = self.split(split)
        return fingerprint(_column(ds, "user_id"), _list_column(ds, "candidates")[0])

    def few_shot_users(self, k: int) -> list[int]:
        ds = self.split("few_shot")
        for row in ds:
            if int(row["k"]) == int(k):
                return list(row["user_ids"])
        raise DataError(f"{self.path} has no few-shot subset with k={k}; available: {sorted(ds['k'])}")


def _column(ds, name: str) -> np.ndarray:
    return np.asarray(ds.data.column(name).to_numpy(), dtype=np.int64)


def _list_column(ds, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(flat values, offsets) of a list<int> column, without materialising Python lists."""
    import pyarrow as pa

    col = ds.data.column(name)
    arr = pa.concat_arrays(col.chunks) if col.num_chunks else pa.array([], pa.list_(pa.int32()))
    offsets = np.asarray(arr.offsets, dtype=np.int64)
    return np.asarray(arr.flatten().to_numpy(), dtype=np.int64), offsets - offsets[0]


def fingerprint(user_ids: np.ndarray, candidates: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(np.asarray(user_ids, dtype=np.int64).tobytes())
    h.update(np.asarray(candidates, dtype=np.int64).ravel().tobytes())
    return h.hexdigest()


def load_prepared(path: str | Path) -> PreparedDataset:
    return PreparedDataset.load(path)


__all__ = ["PreparedDataset", "load_prepared", "EVAL_SPLITS"]
