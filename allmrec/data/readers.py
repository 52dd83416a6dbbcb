"""Readers: raw review/rating files → a uniform interaction table + item metadata table.

Every reader returns :class:`RawData`: ``interactions`` (a ``datasets.Dataset`` over Arrow with
columns ``user`` str, ``item`` str, ``timestamp`` int64 seconds, ``rating`` float32) in **file
order** (the order is the documented tie-break for equal timestamps), and ``items`` (``item`` str,
``title`` str|None, ``description`` str|None).

Supported formats (auto-detected from the fields of the first review line, or ``--format``):

* ``amazon2014`` — ``reviews_<Cat>[_5].json.gz`` (JSON lines) + ``meta_<Cat>.json.gz`` whose lines
  are *Python dict literals* (single quotes), not JSON;
* ``amazon2018`` — ``<Cat>[_5].json.gz`` + ``meta_<Cat>.json[.gz]`` (JSON lines);
* ``amazon2023`` — ``<Cat>.jsonl[.gz]`` + ``meta_<Cat>.jsonl[.gz]``; items are ``parent_asin``,
  timestamps are milliseconds;
* ``recbole`` — RecBole atomic files ``<name>.inter`` + ``<name>.item`` with typed headers;
  ``ml-100k`` is the built-in RecBole copy of MovieLens-100K.

Reviews are parsed with Arrow's multi-threaded JSON reader with an explicit schema (only the four
fields we need are materialised), so multi-GB files stream through in blocks instead of one Python
``json.loads`` per line. If Arrow rejects the file, a line-by-line pass finds the offending line
number for the error message (or skips bad lines with ``skip_bad_lines``). Every line-based read goes through
:func:`allmrec.data.lines.read_lines`: a truncated or corrupt download, invalid UTF-8 or an over-long line is a
one-line error naming the file (see there); a BOM and CRLF line ends are read as clean text.
"""

from __future__ import annotations

import ast
import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import DataError
from .lines import LineStats, read_lines

FORMATS = ("amazon2014", "amazon2018", "amazon2023", "recbole")


@dataclass
class RawData:
    interactions: "object"  # datasets.Dataset
    items: "object"  # datasets.Dataset
    format: str
    files: list[Path]
    bad_lines: int = 0
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- file helpers
def _input_stream(path: Path):
    return pa.input_stream(str(path), compression="gzip" if path.suffix == ".gz" else None)


def _first_record(path: Path) -> dict:
    for lineno, line in read_lines(path):
        line = line.strip()
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            try:
                rec = ast.literal_eval(line)
                if isinstance(rec, dict):
                    return rec
            except (ValueError, SyntaxError):
                pass
            raise DataError(f"{path}:{lineno}: not a JSON (or Python dict) line; is this a review file?")
    raise DataError(f"{path} is empty")


def detect_format(path: Path) -> str:
    """Guess the release of a review file from its first record (or the RecBole layout)."""
    if path.is_dir() or path.suffix in (".inter", ".item"):
        return "recbole"
    rec = _first_record(path)
    if "parent_asin" in rec or ("user_id" in rec and "timestamp" in rec):
        return "amazon2023"
    if "reviewerID" in rec and "asin" in rec:
        # 2014 and 2018 reviews share their fields; the 2014 dump is named reviews_<Cat>.json.gz.
        return "amazon2014" if path.name.startswith("reviews_") else "amazon2018"
    raise DataError(
        f"{path}: unknown review format (fields {sorted(rec)[:8]}); supported: {', '.join(FORMATS)} "
        "(pass --format to choose)"
    )


# ---------------------------------------------------------------------------- Amazon reviews
_REVIEW_FIELDS = {
    # format: (user field, item field, time field, rating field, time divisor)
    "amazon2014": ("reviewerID", "asin", "unixReviewTime", "overall", 1),
    "amazon2018": ("reviewerID", "asin", "unixReviewTime", "overall", 1),
    "amazon2023": ("user_id", "parent_asin", "timestamp", "rating", 1000),
}


def _reviews_python(path: Path, fmt: str, skip_bad_lines: bool, stats: LineStats) -> tuple[pa.Table, int]:
    """Slow path: one line at a time, for exact error lines and --skip-bad-lines."""
    uf, itf, tf, rf, _ = _REVIEW_FIELDS[fmt]
    cols = {"user": [], "item": [], "timestamp": [], "rating": []}
    bad = 0
    for lineno, line in read_lines(path, skip_bad_lines, stats):
        try:
            rec = json.loads(line)
            u, it, t = rec[uf], rec[itf], rec[tf]
            r = rec.get(rf)
            cols["user"].append(str(u))
            cols["item"].append(str(it))
            cols["timestamp"].append(int(t))
            cols["rating"].append(float(r) if r is not None else float("nan"))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            if not skip_bad_lines:
                what = f"missing field {e}" if isinstance(e, KeyError) else type(e).__name__
                raise DataError(
                    f"{path}:{lineno}: malformed review line ({what}); fix the file or pass --skip-bad-lines"
                ) from None
            bad += 1
    table = pa.table(
        {
            "user": pa.array(cols["user"], pa.string()),
            "item": pa.array(cols["item"], pa.string()),
            "timestamp": pa.array(cols["timestamp"], pa.int64()),
            "rating": pa.array(cols["rating"], pa.float32()),
        }
    )
    return table, bad + stats.bad


def read_amazon_reviews(path: Path, fmt: str, skip_bad_lines: bool = False,
                        notes: list[str] | None = None) -> tuple[pa.Table, int]:
    """Review file → Arrow table (user, item, timestamp[s], rating) in file order; returns (table, bad lines).

    A truncated file read with ``skip_bad_lines`` appends its message to ``notes`` (it is never read in part silently).
    """
    import pyarrow.json as pj

    uf, itf, tf, rf, div = _REVIEW_FIELDS[fmt]
    schema = pa.schema([(uf, pa.string()), (itf, pa.string()), (tf, pa.int64()), (rf, pa.float64())])
    try:
        t = pj.read_json(
            _input_stream(path),
            read_options=pj.ReadOptions(block_size=32 << 20, use_threads=True),
            parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
        )
        for name in (uf, itf, tf):
            if t.column(name).null_count:
                raise pa.ArrowInvalid(f"null {name}")
        t.validate(full=True)  # Arrow's JSON reader does not check UTF-8; the line-by-line pass names the bad line
        table = pa.table(
            {
                "user": t.column(uf),
                "item": t.column(itf),
                "timestamp": t.column(tf),
                "rating": t.column(rf).cast(pa.float32()),
            }
        )
        bad = 0
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError):
        # Arrow's message has no reliable line number: re-read line by line to name the line
        # (or to skip bad lines when asked).
        stats = LineStats()
        table, bad = _reviews_python(path, fmt, skip_bad_lines, stats)
        if stats.truncated and notes is not None:
            notes.append(stats.truncated)
    if div != 1:
        table = table.set_column(2, "timestamp", pa.array(np.asarray(table.column("timestamp")) // div))
    return table, bad


# ---------------------------------------------------------------------------- Amazon meta
_TAG_RE = re.compile(r"<[^>]+>")
_WS_RE = re.compile(r"\s+")


def clean_text(s: object, max_chars: int | None = None) -> str | None:
    """HTML-unescape, strip tags, collapse whitespace, cap length; None/empty → None."""
    if s is None:
        return None
    if isinstance(s, (list, tuple)):
        s = " ".join(str(x) for x in s if x)
    s = html.unescape(_TAG_RE.sub(" ", html.unescape(str(s))))
    s = _WS_RE.sub(" ", s).strip()
    if not s:
        return None
    if max_chars and len(s) > max_chars:
        s = s[:max_chars].rstrip()
    return s


def _description_value(d: object, mode: str) -> object:
    if mode == "none" or d is None:
        return None
    if isinstance(d, (list, tuple)):
        d = [x for x in d if isinstance(x, str) and x.strip()]
        if not d:
            return None
        return d[0] if mode == "first" else " ".join(d)
    return d


def read_amazon_meta(
    path: Path, fmt: str, wanted: set[str] | None, description: str, max_title: int, max_desc: int, skip_bad_lines: bool,
    notes: list[str] | None = None,
) -> tuple[pa.Table, int]:
    """Meta file → Arrow table (item, title, description). Only items in ``wanted`` are kept.

    2014 meta lines are Python literals (``{'asin': ...}``) and need ``ast.literal_eval``; 2018/2023
    lines are JSON. We try JSON first per line and fall back, so mixed files work too.
    """
    key = "parent_asin" if fmt == "amazon2023" else "asin"
    items, titles, descs = [], [], []
    bad = 0
    stats = LineStats()
    for lineno, line in read_lines(path, skip_bad_lines, stats):
        try:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                rec = ast.literal_eval(line)
            if not isinstance(rec, dict):
                raise ValueError("not a dict")
            it = rec[key]
        except (ValueError, SyntaxError, KeyError, TypeError, MemoryError):
            if not skip_bad_lines:
                raise DataError(
                    f"{path}:{lineno}: malformed meta line (expected a JSON object or Python dict with '{key}'); "
                    "fix the file or pass --skip-bad-lines"
                ) from None
            bad += 1
            continue
        it = str(it)
        if wanted is not None and it not in wanted:
            continue
        items.append(it)
        titles.append(clean_text(rec.get("title"), max_title))
        descs.append(clean_text(_description_value(rec.get("description"), description), max_desc))
    if stats.truncated and notes is not None:
        notes.append(stats.truncated)
    return pa.table({"item": items, "title": pa.array(titles, pa.string()), "description": pa.array(descs, pa.string())}), bad + stats.bad


# ---------------------------------------------------------------------------- RecBole atomic files
def _recbole_files(source: Path) -> tuple[Path, Path | None]:
    if source.is_dir():
        inter = sorted(source.glob("*.inter"))
        if len(inter) != 1:
            raise DataError(f"{source}: expected exactly one *.inter file, found {len(inter)}")
        inter = inter[0]
    elif source.suffix == ".inter":
        inter = source
    elif source.suffix == ".item":
        inter = source.with_suffix(".inter")
    else:
        raise DataError(f"{source}: not a RecBole .inter file or directory")
    item = inter.with_suffix(".item")
    return inter, item if item.is_file() else None


def _read_atomic(path: Path):
    import pandas as pd

    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
    names = [h.split(":")[0] for h in header]
    try:
        df = pd.read_csv(
            path, sep="\t", skiprows=1, names=names, quoting=3, keep_default_na=False, encoding="utf-8", dtype=str,
            on_bad_lines="error",
        )
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: malformed RecBole atomic file ({str(e).splitlines()[0]})") from None
    return df


def read_recbole(source: Path, max_title: int, max_desc: int) -> tuple[pa.Table, pa.Table, list[Path]]:
    inter_path, item_path = _recbole_files(source)
    inter = _read_atomic(inter_path)
    for col in ("user_id", "item_id"):
        if col not in inter.columns:
            raise DataError(f"{inter_path}: missing column '{col}' in the header")
    ts_col = "timestamp" if "timestamp" in inter.columns else None
    try:
        ts = inter[ts_col].astype(float).astype(np.int64) if ts_col else np.zeros(len(inter), np.int64)
        rating = inter["rating"].astype(np.float32) if "rating" in inter.columns else np.full(len(inter), np.nan, np.float32)
    except ValueError as e:
        raise DataError(f"{inter_path}: non-numeric timestamp/rating ({e})") from None
    interactions = pa.table(
        {
            "user": pa.array(inter["user_id"].to_numpy(), pa.string()),
            "item": pa.array(inter["item_id"].to_numpy(), pa.string()),
            "timestamp": pa.array(np.asarray(ts), pa.int64()),
            "rating": pa.array(np.asarray(rating), pa.float32()),
        }
    )
    files = [inter_path]
    if item_path is None:
        items = pa.table({"item": pa.array([], pa.string()), "title": pa.array([], pa.string()), "description": pa.array([], pa.string())})
    else:
        files.append(item_path)
        it = _read_atomic(item_path)
        title_col = next((c for c in ("movie_title", "title", "name", "item_name") if c in it.columns), None)
        if title_col is None:
            raise DataError(f"{item_path}: no title column (looked for movie_title/title/name/item_name)")
        titles = it[title_col]
        if "release_year" in it.columns:
            # MovieLens convention: "Toy Story (1995)"; disambiguates remakes that share a title.
            year = it["release_year"].astype(str).str.strip()
            titles = titles.where(year == "", titles + " (" + year + ")")
        desc_col = next((c for c in ("class", "genre", "categories", "description") if c in it.columns), None)
        descs = it[desc_col].str.split().str.join(", ") if desc_col == "class" else (it[desc_col] if desc_col else None)
        items = pa.table(
            {
                "item": pa.array(it["item_id"].to_numpy(), pa.string()),
                "title": pa.array([clean_text(t, max_title) for t in titles], pa.string()),
                "description": pa.array(
                    [clean_text(d, max_desc) for d in descs] if descs is not None else [None] * len(it), pa.string()
                ),
            }
        )
    return interactions, items, files


__all__ = ["RawData", "FORMATS", "detect_format", "read_amazon_reviews", "read_amazon_meta", "read_recbole", "clean_text"]
