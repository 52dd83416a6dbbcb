"""``allmrec data prepare``: raw files → a reproducible prepared dataset directory.

Pipeline (each option in :class:`PrepareOptions`, all recorded in ``manifest.json``)::

    read (Amazon 2014/2018/2023, RecBole, ml-100k)
      → rating threshold (applied to interactions)        → duplicate policy
      → items without a title: drop or fallback text       → hold out cold users (exactly 3 items)
      → k-core (iterative, or the authors' single pass)    → ids by first appearance
      → stable (user, time) sort, file order breaks ties   → leave-one-out split
      → popularity labels (warm top 35 % / cold bottom 35 % of training counts)
      → seeded candidate sets for valid/test/cold users    → few-shot user subsets
      → atomic write: dataset/ (DatasetDict) + items.jsonl + manifest.json

Layout of the output: see :mod:`allmrec.data.dataset`.
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pyarrow as pa

from .. import __version__
from ..errors import DataError
from ..utils.io import atomic_directory, atomic_write_json, sha256_file
from ..utils.logging import get_logger
from . import processing as P
from .candidates import assemble_candidates, sample_negatives
from .dataset import fingerprint
from .readers import FORMATS, detect_format, read_amazon_meta, read_amazon_reviews, read_recbole

logger = get_logger(__name__)

DOMAINS = ("movie", "game", "item")


@dataclass
class PrepareOptions:
    """Preprocessing options. Defaults follow the paper (§5.1) and are all recorded in the manifest."""

    source: str = field(metadata={"help": "ml-100k (built in), a RecBole .inter file/dir, an Amazon review file, or hub:OWNER/NAME[@REV] (a dataset pushed with `allmrec data push`: downloaded as it was prepared)"})
    meta: str | None = field(default=None, metadata={"help": "Amazon meta file (meta_<Cat>.json[.gz]/.jsonl[.gz])"})
    format: str = field(default="auto", metadata={"help": f"input format: auto or one of {', '.join(FORMATS)}"})
    name: str | None = field(default=None, metadata={"help": "dataset name (default: from the file name)"})
    domain: str = field(default="auto", metadata={"help": "prompt wording: movie, game, item or auto (from the name)"})
    rating_threshold: float | None = field(
        default=None,
        metadata={"help": "keep interactions with rating > T (paper: 3 for Beauty/Toys; auto-applied by name; -1 disables)"},
    )
    kcore: int | None = field(default=None, metadata={"help": "k of the k-core (paper: 5; 4 for Beauty/Toys; auto by name)"})
    kcore_mode: str = field(
        default="iterative", metadata={"help": "iterative (exact k-core) or single-pass (the authors' one-pass filter)"}
    )
    duplicates: str = field(
        default="first", metadata={"help": "repeated (user, item) interactions: keep, first (earliest) or last"}
    )
    missing_meta: str = field(
        default="drop", metadata={"help": "items without a title: drop (before k-core) or fallback ('Item <id>')"}
    )
    text_format: str = field(
        default="paper", metadata={"help": "SBERT text: paper ('Title: t, Description: d') or official ('\"t, d\"')"}
    )
    description: str = field(default="first", metadata={"help": "description list: first element, join all, or none"})
    max_title_chars: int = field(default=200, metadata={"help": "cap on title length (characters)"})
    max_description_chars: int = field(default=500, metadata={"help": "cap on description length (characters)"})
    maxlen: int = field(default=50, metadata={"help": "max sequence length models read (recorded; histories are stored whole)"})
    num_candidates: int = field(default=20, metadata={"help": "candidates per evaluation user (target + negatives)"})
    warm_fraction: float = field(default=0.35, metadata={"help": "top fraction of items (by training count) labelled warm"})
    cold_fraction: float = field(default=0.35, metadata={"help": "bottom fraction of items labelled cold"})
    cold_user_len: int = field(default=3, metadata={"help": "users with exactly this many interactions form cold_user_test (0 disables)"})
    few_shot: tuple[int, ...] = field(default=(128, 256), metadata={"help": "sizes K of seeded few-shot user subsets"})
    seed: int = field(default=42, metadata={"help": "seed for candidates and few-shot subsets"})
    skip_bad_lines: bool = field(default=False, metadata={"help": "skip malformed lines (count reported) instead of failing"})

    def resolved(self) -> "PrepareOptions":
        """Fill ``auto`` values from the dataset name (paper presets) and validate."""
        o = PrepareOptions(**asdict(self))
        src = Path(o.source)
        if o.name is None:
            o.name = "ml-100k" if o.source.lower() == "ml-100k" else re.sub(r"(\.json|\.jsonl|\.gz|\.inter)+$", "", src.name)
            o.name = re.sub(r"^reviews_", "", o.name)
        low = o.name.lower()
        beauty_toys = "beauty" in low or "toys" in low
        if o.rating_threshold is None:
            o.rating_threshold = 3.0 if beauty_toys else -1.0
        if o.kcore is None:
            o.kcore = 4 if beauty_toys else 5
        if o.domain == "auto":
            o.domain = "movie" if ("movie" in low or low.startswith("ml-")) else "game" if "game" in low else "item"
        checks = [
            (o.domain in DOMAINS, f"--domain must be one of {DOMAINS}"),
            (o.kcore_mode in ("iterative", "single-pass"), "--kcore-mode must be iterative or single-pass"),
            (o.duplicates in ("keep", "first", "last"), "--duplicates must be keep, first or last"),
            (o.missing_meta in ("drop", "fallback"), "--missing-meta must be drop or fallback"),
            (o.text_format in ("paper", "official"), "--text-format must be paper or official"),
            (o.description in ("first", "join", "none"), "--description must be first, join or none"),
            (o.format == "auto" or o.format in FORMATS, f"--format must be auto or one of {', '.join(FORMATS)}"),
            (o.num_candidates >= 2, "--num-candidates must be at least 2"),
            (0 <= o.warm_fraction <= 1 and 0 <= o.cold_fraction <= 1 and o.warm_fraction + o.cold_fraction <= 1,
             "--warm-fraction and --cold-fraction must be in [0, 1] and sum to at most 1"),
        ]
        for ok, msg in checks:
            if not ok:
                raise DataError(msg)
        return o


def item_text(title: str, description: str | None, fmt: str) -> str:
    """The SBERT input text of one item in the paper's or the authors' format."""
    if fmt == "official":
        return f'"{title}, {description}"' if description else f'"{title}"'
    return f"Title: {title}, Description: {description}" if description else f"Title: {title}"


def normalise_title(t: str) -> str:
    return re.sub(r"\s+", " ", t.lower()).strip(" \"'.")


def _read(o: PrepareOptions, notes: list[str]):
    """→ (interactions table, items table, files, fmt, bad lines); read problems that were tolerated go in ``notes``."""
    from ..assets import resolve_dataset

    src = resolve_dataset(o.source)
    if not src.exists():
        raise DataError(f"{src} does not exist; pass --source ml-100k, a RecBole .inter file/dir or an Amazon review file")
    fmt = detect_format(src) if o.format == "auto" else o.format
    bad = 0
    if fmt == "recbole":
        inter, items, files = read_recbole(src, o.max_title_chars, o.max_description_chars)
        return inter, items, files, fmt, bad
    if o.meta is None:
        raise DataError(f"{fmt} needs item titles: pass --meta meta_<Category>.json[.gz] next to the review file")
    meta = Path(o.meta)
    if not meta.is_file():
        raise DataError(f"meta file {meta} does not exist")
    inter, bad = read_amazon_reviews(src, fmt, o.skip_bad_lines, notes)
    wanted = set(pa.compute.unique(inter.column("item")).to_pylist())
    items, bad_meta = read_amazon_meta(
        meta, fmt, wanted, o.description, o.max_title_chars, o.max_description_chars, o.skip_bad_lines, notes
    )
    return inter, items, [src, meta], fmt, bad + bad_meta


def _codes(col: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    enc = col.combine_chunks().dictionary_encode()
    return np.asarray(enc.indices, dtype=np.int64), enc.dictionary.to_pylist()


def _list_array(values: np.ndarray, offsets: np.ndarray) -> pa.ListArray:
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values, pa.int32()))


def prepare(options: PrepareOptions, out: str | Path, overwrite: bool = False, progress: bool = True) -> dict:
    """Run the whole preprocessing and write ``out`` atomically; returns the manifest."""
    import datasets

    t0 = time.perf_counter()
    o = options.resolved()
    out = Path(out)
    if out.exists() and not overwrite:
        raise DataError(f"output directory {out} already exists; pass --overwrite to replace it")
    log = logger.info if progress else (lambda *a, **k: None)
    steps: dict[str, int] = {}
    timings: dict[str, float] = {}

    def tick(name: str, t: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - t, 3)
        return now

    t = time.perf_counter()
    read_notes: list[str] = []
    inter, meta, files, fmt, bad = _read(o, read_notes)
    t = tick("read", t)
    for note in read_notes:  # e.g. a truncated download kept in part under --skip-bad-lines: said, never silent
        logger.warning("%s: kept the lines read before the cut; re-download for the full data", note)
    n_raw = inter.num_rows
    log("read %s (%s): %d interactions, %d meta rows, %d bad lines skipped", o.name, fmt, n_raw, meta.num_rows, bad)
    if n_raw == 0:
        raise DataError(f"{files[0]} has no interactions")
    user_code, user_names = _codes(inter.column("user"))
    item_code, item_names = _codes(inter.column("item"))
    ts = np.asarray(inter.column("timestamp"), dtype=np.int64)
    rating = np.asarray(inter.column("rating").to_numpy(zero_copy_only=False), dtype=np.float32)
    del inter

    # ---- item titles / descriptions aligned to item codes
    title = np.full(len(item_names), None, dtype=object)
    desc = np.full(len(item_names), None, dtype=object)
    if meta.num_rows:
        name_to_code = {n: i for i, n in enumerate(item_names)}
        mi = np.array([name_to_code.get(x, -1) for x in meta.column("item").to_pylist()], dtype=np.int64)
        ok = mi >= 0
        title[mi[ok]] = np.asarray(meta.column("title").to_pylist(), dtype=object)[ok]
        desc[mi[ok]] = np.asarray(meta.column("description").to_pylist(), dtype=object)[ok]
    has_title = np.array([t_ is not None for t_ in title], dtype=bool)

    # ---- filters
    mask = P.rating_filter(rating, None if o.rating_threshold < 0 else o.rating_threshold)
    steps["after_rating_filter"] = int(mask.sum())
    idx = np.flatnonzero(mask)
    dmask = P.duplicate_mask(user_code[idx], item_code[idx], ts[idx], o.duplicates)
    mask[idx[~dmask]] = False
    steps["after_duplicates"] = int(mask.sum())
    n_items_no_title = int(np.unique(item_code[mask & ~has_title[item_code]]).size)
    if o.missing_meta == "drop":
        mask &= has_title[item_code]
    else:
        for c in np.flatnonzero(~has_title):
            title[c] = f"Item {item_names[c]}"
    steps["after_missing_meta"] = int(mask.sum())
    if not mask.any():
        which = "the rating threshold" if steps["after_rating_filter"] == 0 else "dropping items without a title (--missing-meta fallback keeps them)"
        raise DataError(f"no interactions left after {which}")

    # Cold users are held out *before* the k-core (they would never survive it) and kept only if
    # all their items survive in the catalogue (paper §5.2.3: users with exactly three items).
    ucount = np.bincount(user_code[mask], minlength=len(user_names))
    cold_user = (ucount == o.cold_user_len) if o.cold_user_len > 0 else np.zeros(len(user_names), bool)
    core_mask = mask & ~cold_user[user_code]
    idx = np.flatnonzero(core_mask)
    kmask, iters = P.kcore_mask(user_code[idx], item_code[idx], o.kcore, o.kcore_mode)
    core_mask[idx[~kmask]] = False
    steps["after_kcore"] = int(core_mask.sum())
    if not core_mask.any():
        raise DataError(f"no interactions left after the {o.kcore}-core filter; lower --kcore")
    t = tick("filter", t)

    # ---- ids by first appearance (file order) among kept interactions
    kept = np.flatnonzero(core_mask)
    u_ids = P.first_appearance_ids(user_code[kept])
    i_ids = P.first_appearance_ids(item_code[kept])
    num_users, num_items = int(u_ids.max()), int(i_ids.max())
    item_code_of_id = np.zeros(num_items + 1, dtype=np.int64)
    item_code_of_id[i_ids] = item_code[kept]
    user_code_of_id = np.zeros(num_users + 1, dtype=np.int64)
    user_code_of_id[u_ids] = user_code[kept]
    id_of_item_code = np.zeros(len(item_names), dtype=np.int64)
    id_of_item_code[item_code[kept]] = i_ids

    order = P.sort_by_user_time(u_ids, ts[kept])
    seq_items = i_ids[order]
    offsets = P.sequences(u_ids[order], num_users)
    lengths = np.diff(offsets)
    has_eval = lengths >= 3
    # leave-one-out: train = seq[:-2], valid = seq[-2], test = seq[-1] (users with < 3: all train)
    train_len = np.where(has_eval, lengths - 2, lengths)
    valid_item = np.where(has_eval, seq_items[np.maximum(offsets[1:] - 2, 0)], 0)
    test_item = np.where(has_eval, seq_items[np.maximum(offsets[1:] - 1, 0)], 0)
    pos_in_user = np.arange(len(seq_items)) - np.repeat(offsets[:-1], lengths)
    in_train = pos_in_user < np.repeat(train_len, lengths)
    train_items = seq_items[in_train]
    train_offsets = np.concatenate([[0], np.cumsum(train_len)])
    train_count = np.bincount(train_items, minlength=num_items + 1)[1:]
    pop = P.popularity_labels(train_count, o.warm_fraction, o.cold_fraction)
    pop_of_id = np.concatenate([["mid"], pop])
    t = tick("split", t)

    # ---- candidates (valid then test then cold users, one generator: fixed order = fixed result)
    titles_by_id = [title[c] for c in item_code_of_id[1:]]
    _, title_group = np.unique([normalise_title(x) for x in titles_by_id], return_inverse=True)
    title_group = np.concatenate([[-1], title_group]).astype(np.int64)
    rng = np.random.default_rng(o.seed)
    eval_users = np.flatnonzero(has_eval) + 1
    user_of_pos = np.repeat(np.arange(1, num_users + 1), lengths)
    hist_keys = np.sort(user_of_pos * (num_items + 1) + seq_items)
    n_neg = o.num_candidates - 1
    eval_tables = {}
    for split in ("valid", "test"):
        targets = (valid_item if split == "valid" else test_item)[eval_users - 1]
        negs = sample_negatives(rng, eval_users, targets, hist_keys, num_items, title_group, n_neg)
        cands, tidx = assemble_candidates(rng, targets, negs)
        # history: valid → train items; test → train items + the valid item (= seq[:-1])
        hlen = lengths[eval_users - 1] - (2 if split == "valid" else 1)
        starts = offsets[eval_users - 1]
        hist_pos = np.repeat(starts, hlen) + (np.arange(hlen.sum()) - np.repeat(np.cumsum(hlen) - hlen, hlen))
        eval_tables[split] = pa.table(
            {
                "user_id": pa.array(eval_users, pa.int32()),
                "history": _list_array(seq_items[hist_pos], np.concatenate([[0], np.cumsum(hlen)])),
                "target": pa.array(targets, pa.int32()),
                "candidates": _list_array(cands.ravel(), np.arange(len(eval_users) + 1) * o.num_candidates),
                "target_index": pa.array(tidx, pa.int32()),
                "scenario": pa.array(pop_of_id[targets].tolist(), pa.string()),
            }
        )

    # cold users: their interactions on catalogue items; keep those with all items in the catalogue
    cu_idx = np.flatnonzero(mask & cold_user[user_code])
    cu_idx = cu_idx[id_of_item_code[item_code[cu_idx]] > 0]
    cu_codes = user_code[cu_idx]
    cu_full = np.bincount(cu_codes, minlength=len(user_names))[cu_codes] == o.cold_user_len if len(cu_idx) else np.zeros(0, bool)
    cu_idx = cu_idx[cu_full]
    if len(cu_idx):
        cu_local = P.first_appearance_ids(user_code[cu_idx])  # 1..C
        n_cold_users = int(cu_local.max())
        corder = P.sort_by_user_time(cu_local, ts[cu_idx])
        c_items = id_of_item_code[item_code[cu_idx]][corder]
        c_users = cu_local[corder]
        cold_ids = num_users + np.arange(1, n_cold_users + 1)  # ids after the training users
        cold_code = np.zeros(n_cold_users, dtype=np.int64)
        cold_code[c_users - 1] = user_code[cu_idx][corder]
        L = o.cold_user_len
        c_seq = c_items.reshape(n_cold_users, L)
        targets = c_seq[:, -1]
        ckeys = np.sort(np.repeat(cold_ids, L) * (num_items + 1) + c_seq.ravel())
        negs = sample_negatives(rng, cold_ids, targets, ckeys, num_items, title_group, n_neg)
        cands, tidx = assemble_candidates(rng, targets, negs)
        cold_table = pa.table(
            {
                "user_id": pa.array(cold_ids, pa.int32()),
                "history": _list_array(c_seq[:, :-1].ravel(), np.arange(n_cold_users + 1) * (L - 1)),
                "target": pa.array(targets, pa.int32()),
                "candidates": _list_array(cands.ravel(), np.arange(n_cold_users + 1) * o.num_candidates),
                "target_index": pa.array(tidx, pa.int32()),
                "scenario": pa.array(["cold_user"] * n_cold_users, pa.string()),
                "original_user_id": pa.array([user_names[c] for c in cold_code], pa.string()),
            }
        )
    else:
        n_cold_users = 0
        cold_table = eval_tables["test"].slice(0, 0).append_column("original_user_id", pa.array([], pa.string()))

    fs_rows = {"k": [], "user_ids": []}
    for k in o.few_shot:
        if k > len(eval_users):
            logger.warning("few-shot K=%d exceeds the %d evaluation users; subset skipped", k, len(eval_users))
            continue
        fs_rows["k"].append(int(k))
        fs_rows["user_ids"].append(np.sort(rng.choice(eval_users, size=k, replace=False)).tolist())
    t = tick("candidates", t)

    # ---- tables
    descs_by_id = [desc[c] for c in item_code_of_id[1:]]
    texts = [item_text(ti, de, o.text_format) for ti, de in zip(titles_by_id, descs_by_id)]
    items_table = pa.table(
        {
            "item_id": pa.array(np.arange(1, num_items + 1), pa.int32()),
            "original_id": pa.array([item_names[c] for c in item_code_of_id[1:]], pa.string()),
            "title": pa.array(titles_by_id, pa.string()),
            "text": pa.array(texts, pa.string()),
            "train_count": pa.array(train_count, pa.int32()),
            "popularity": pa.array(pop.tolist(), pa.string()),
        }
    )
    users_table = pa.table(
        {
            "user_id": pa.array(np.arange(1, num_users + 1), pa.int32()),
            "original_id": pa.array([user_names[c] for c in user_code_of_id[1:]], pa.string()),
            "train": _list_array(train_items, train_offsets),
            "valid": pa.array(valid_item, pa.int32()),
            "test": pa.array(test_item, pa.int32()),
        }
    )
    dd = datasets.DatasetDict(
        {
            "items": datasets.Dataset(items_table),
            "users": datasets.Dataset(users_table),
            "valid": datasets.Dataset(eval_tables["valid"]),
            "test": datasets.Dataset(eval_tables["test"]),
            "cold_user_test": datasets.Dataset(cold_table),
            "few_shot": datasets.Dataset(
                pa.table({"k": pa.array(fs_rows["k"], pa.int32()), "user_ids": pa.array(fs_rows["user_ids"], pa.list_(pa.int32()))})
            ),
        }
    )
    scen = eval_tables["test"].column("scenario").to_pylist()
    n_inter = int(lengths.sum())
    counts = {
        "raw_interactions": int(n_raw),
        **steps,
        "kcore_iterations": iters,
        "bad_lines_skipped": int(bad),
        "items_without_title": n_items_no_title,
        "users": num_users,
        "items": num_items,
        "interactions": n_inter,
        "avg_sequence_length": round(n_inter / num_users, 4),
        "density": round(n_inter / (num_users * num_items), 6),
        "eval_users": int(len(eval_users)),
        "test_users_warm": scen.count("warm"),
        "test_users_mid": scen.count("mid"),
        "test_users_cold": scen.count("cold"),
        "cold_users": n_cold_users,
        "items_warm": int((pop == "warm").sum()),
        "items_cold": int((pop == "cold").sum()),
    }
    manifest = {
        "name": o.name,
        "format": fmt,
        "allmrec_version": __version__,
        "created_by": " ".join(["allmrec", *sys.argv[1:]]) if sys.argv and "allmrec" in sys.argv[0] else None,
        "inputs": [{"path": str(f), "bytes": f.stat().st_size, "sha256": sha256_file(f)} for f in files],
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(o).items()},
        "counts": counts,
        "read_warnings": read_notes,
        "id_scheme": "users and items numbered 1..N by first appearance in the input file among kept interactions; 0 = padding",
        "order": "stable sort by (user, timestamp); equal timestamps keep input-file order",
        "split": "leave-one-out: train = seq[:-2], valid = seq[-2], test = seq[-1]; users with < 3 interactions: train only",
        "candidates": (
            f"{o.num_candidates} per eval user: target + {n_neg} uniform negatives never interacted with (full history), "
            "no negative sharing the target's normalised title, shuffled; seeded, drawn once"
        ),
        "candidate_fingerprints": {},
    }
    t = tick("tables", t)
    # datasets cannot reload a split saved with zero rows (0 shards), so empty splits are left out
    # and listed in the manifest; PreparedDataset.split() returns them empty with the right schema.
    manifest["empty_splits"] = [k for k, v in dd.items() if len(v) == 0]
    dd = datasets.DatasetDict({k: v for k, v in dd.items() if len(v) > 0})
    datasets.disable_progress_bars()
    with atomic_directory(out, overwrite=overwrite) as tmp:
        dd.save_to_disk(str(tmp / "dataset"))
        with open(tmp / "items.jsonl", "w", encoding="utf-8") as f:
            for row in zip(items_table.column("item_id").to_pylist(), items_table.column("original_id").to_pylist(), titles_by_id, texts):
                f.write(json.dumps(dict(zip(("item_id", "original_id", "title", "text"), row)), ensure_ascii=False) + "\n")
        manifest["candidate_fingerprints"] = {
            s: fingerprint(np.asarray(t.column("user_id")), np.asarray(t.column("candidates").combine_chunks().flatten()))
            for s, t in (("valid", eval_tables["valid"]), ("test", eval_tables["test"]), ("cold_user_test", cold_table))
        }
        timings["write"] = round(time.perf_counter() - t, 3)
        timings["total"] = round(time.perf_counter() - t0, 3)
        manifest["timings"] = timings
        atomic_write_json(tmp / "manifest.json", manifest)
    log("wrote %s: %d users, %d items, %d interactions in %.1f s", out, num_users, num_items, n_inter, timings["total"])
    return manifest


def options_from_args(args) -> PrepareOptions:
    kw = {f.name: getattr(args, f.name) for f in fields(PrepareOptions) if hasattr(args, f.name)}
    if isinstance(kw.get("few_shot"), str):
        kw["few_shot"] = tuple(int(x) for x in kw["few_shot"].split(",") if x.strip())
    return PrepareOptions(**kw)


__all__ = ["PrepareOptions", "prepare", "item_text", "options_from_args", "DOMAINS"]
