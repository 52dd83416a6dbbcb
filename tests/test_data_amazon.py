"""Amazon readers and preprocessing on hand-made fixtures in the 2014, 2018 and 2023 formats."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from allmrec.data.dataset import PreparedDataset
from allmrec.data.prepare import PrepareOptions, prepare
from allmrec.data.readers import clean_text, detect_format
from allmrec.errors import AllmrecError, DataError

# Items A..H (F has no title). u1..u5 each interact with 5 of the 7 titled items, so a 3-core keeps
# them and each has negatives left; u6 only has A and the untitled F.
BASE = [
    # user, item, time, rating
    ("u1", "A", 10, 5), ("u1", "B", 20, 4), ("u1", "C", 20, 5), ("u1", "D", 30, 5), ("u1", "E", 40, 4),
    ("u2", "B", 11, 5), ("u2", "C", 12, 2), ("u2", "D", 13, 5), ("u2", "E", 14, 5), ("u2", "G", 15, 5),
    ("u3", "A", 5, 5), ("u3", "C", 6, 5), ("u3", "D", 7, 5), ("u3", "G", 8, 5), ("u3", "H", 9, 4),
    ("u4", "A", 1, 4), ("u4", "B", 2, 5), ("u4", "D", 3, 5), ("u4", "H", 4, 5), ("u4", "E", 5, 5),
    ("u5", "A", 1, 5), ("u5", "B", 2, 5), ("u5", "C", 3, 5), ("u5", "H", 4, 5), ("u5", "G", 5, 5),
    ("u6", "A", 1, 5), ("u6", "F", 2, 5),
    ("u1", "B", 50, 5),  # duplicate (user, item): later repeat of u1-B
]
META = {
    "A": {"title": "Caf\u00e9 &amp; Cr\u00e8me", "description": ["<p>Great <b>coffee</b> set</p>", "second part"]},
    "B": {"title": "Blue Game\u2122", "description": []},
    "C": {"title": "  Spaced   Title ", "description": ["x" * 900]},
    "D": {"title": "\u65e5\u672c\u8a9e Title", "description": ["plain"]},
    "E": {"title": "Echo", "description": ["&lt;b&gt;escaped html&lt;/b&gt;"]},
    "F": {"description": ["no title here"]},  # missing title
    "G": {"title": "Gamma", "description": ["g"]},
    "H": {"title": "Hotel", "description": ["h"]},
    "Z": {"title": "Never reviewed"},  # meta without reviews: ignored
}


def _write_lines(path: Path, lines: list[str], gz: bool) -> Path:
    data = ("\n".join(lines) + "\n").encode("utf-8")
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def make_amazon(tmp: Path, fmt: str, rows=BASE, meta=META) -> tuple[Path, Path]:
    tmp.mkdir(parents=True, exist_ok=True)
    if fmt == "amazon2014":
        rev = [json.dumps({"reviewerID": u, "asin": i, "unixReviewTime": t, "overall": float(r), "reviewText": "ok"}) for u, i, t, r in rows]
        # 2014 meta: Python dict literals with single quotes (not JSON)
        met = [repr({"asin": k, **({"title": v["title"]} if "title" in v else {}), "description": " ".join(v.get("description", []))}) for k, v in meta.items()]
        return _write_lines(tmp / "reviews_Toy_Cat.json", rev, True), _write_lines(tmp / "meta_Toy_Cat.json", met, True)
    if fmt == "amazon2018":
        rev = [json.dumps({"reviewerID": u, "asin": i, "unixReviewTime": t, "overall": float(r), "style": {"Format:": "x"}, "vote": "2"}) for u, i, t, r in rows]
        met = [json.dumps({"asin": k, **v}) for k, v in meta.items()]
        return _write_lines(tmp / "Toy_Cat.json", rev, True), _write_lines(tmp / "meta_Toy_Cat.json", met, False)
    rev = [json.dumps({"user_id": u, "parent_asin": i, "asin": i + "-v", "timestamp": t * 1000, "rating": float(r), "title": "t"}) for u, i, t, r in rows]
    met = [json.dumps({"parent_asin": k, "main_category": "x", **v}) for k, v in meta.items()]
    return _write_lines(tmp / "Toy_Cat.jsonl", rev, True), _write_lines(tmp / "meta_Toy_Cat.jsonl", met, True)


FORMATS = ["amazon2014", "amazon2018", "amazon2023"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_detect_format(tmp_path, fmt):
    rev, _ = make_amazon(tmp_path, fmt)
    assert detect_format(rev) == fmt


@pytest.mark.parametrize("fmt", FORMATS)
def test_prepare_amazon_formats(tmp_path, fmt):
    rev, meta = make_amazon(tmp_path / "raw", fmt)
    m = prepare(PrepareOptions(source=str(rev), meta=str(meta), kcore=3, num_candidates=2, few_shot=()), tmp_path / "out", progress=False)
    ds = PreparedDataset.load(tmp_path / "out")
    c = m["counts"]
    assert m["format"] == fmt
    assert c["raw_interactions"] == len(BASE)
    assert c["after_duplicates"] == len(BASE) - 1  # the later u1-B repeat is dropped ("first")
    # F has no title → dropped before the k-core; then u6 (1 item left) fails the 3-core
    assert c["items_without_title"] == 1
    assert set(ds.split("items")["original_id"]) == {"A", "B", "C", "D", "E", "G", "H"}
    assert c["users"] == 5
    titles = dict(zip(ds.split("items")["original_id"], ds.split("items")["title"]))
    assert titles["A"] == "Café & Crème"
    assert titles["C"] == "Spaced Title"
    assert titles["D"] == "日本語 Title"
    texts = dict(zip(ds.split("items")["original_id"], ds.split("items")["text"]))
    assert "<" not in texts["A"] and "coffee" in texts["A"]
    assert texts["B"] == "Title: Blue Game™"  # empty description list → title only
    assert len(texts["C"]) < 900  # description capped
    # ids by first appearance in the file: A (u1's first) = 1, B = 2, ...
    assert ds.split("items")["original_id"][:2] == ["A", "B"]
    # u1: A@10, then B and C share t=20 → file order (B before C) is kept
    users = ds.split("users")
    u1 = users["original_id"].index("u1")
    full = users["train"][u1] + [users["valid"][u1], users["test"][u1]]
    id_of = {o: i + 1 for i, o in enumerate(ds.split("items")["original_id"])}
    assert full == [id_of[x] for x in ["A", "B", "C", "D", "E"]]


def test_rating_threshold_applies_to_interactions(tmp_path):
    rev, meta = make_amazon(tmp_path / "raw", "amazon2018")
    m = prepare(
        PrepareOptions(source=str(rev), meta=str(meta), kcore=1, rating_threshold=3, num_candidates=2, few_shot=()),
        tmp_path / "out", progress=False,
    )
    ds = PreparedDataset.load(tmp_path / "out")
    assert m["counts"]["after_rating_filter"] == len(BASE) - 1  # the single rating-2 interaction (u2-C)
    users = ds.split("users")
    u2 = users["original_id"].index("u2")
    c_id = ds.split("items")["original_id"].index("C") + 1
    assert c_id not in users["train"][u2] + [users["valid"][u2], users["test"][u2]]


def test_beauty_preset_by_name(tmp_path):
    o = PrepareOptions(source="x", name="Luxury_Beauty").resolved()
    assert (o.kcore, o.rating_threshold, o.domain) == (4, 3.0, "item")
    o = PrepareOptions(source="x", name="Video_Games").resolved()
    assert (o.kcore, o.rating_threshold, o.domain) == (5, -1.0, "game")


def test_missing_meta_fallback_keeps_items(tmp_path):
    rev, meta = make_amazon(tmp_path / "raw", "amazon2018")
    prepare(PrepareOptions(source=str(rev), meta=str(meta), kcore=1, missing_meta="fallback", num_candidates=2, few_shot=()),
            tmp_path / "out", progress=False)
    ds = PreparedDataset.load(tmp_path / "out")
    titles = dict(zip(ds.split("items")["original_id"], ds.split("items")["title"]))
    assert titles["F"] == "Item F"


def test_official_text_format(tmp_path):
    rev, meta = make_amazon(tmp_path / "raw", "amazon2018")
    prepare(PrepareOptions(source=str(rev), meta=str(meta), kcore=3, text_format="official", num_candidates=2, few_shot=()),
            tmp_path / "out", progress=False)
    texts = dict(zip(*[PreparedDataset.load(tmp_path / "out").split("items")[c] for c in ("original_id", "text")]))
    assert texts["D"] == '"日本語 Title, plain"'


def test_malformed_line_names_file_and_line(tmp_path):
    rows = [json.dumps({"reviewerID": "u1", "asin": "A", "unixReviewTime": 1, "overall": 5.0}), "{not json", ""]
    rev = _write_lines(tmp_path / "Bad.json", rows, False)
    _, meta = make_amazon(tmp_path / "m", "amazon2018")
    with pytest.raises(DataError, match=r"Bad\.json:2: malformed review line.*--skip-bad-lines"):
        prepare(PrepareOptions(source=str(rev), meta=str(meta), format="amazon2018", kcore=1), tmp_path / "o", progress=False)


def test_skip_bad_lines_counts_them(tmp_path):
    rows = [json.dumps({"reviewerID": u, "asin": i, "unixReviewTime": t, "overall": float(r)}) for u, i, t, r in BASE]
    rows.insert(3, "{broken")
    rows.insert(7, json.dumps({"reviewerID": "u9"}))  # missing fields
    rev = _write_lines(tmp_path / "Cat.json", rows, False)
    _, meta = make_amazon(tmp_path / "m", "amazon2018")
    m = prepare(PrepareOptions(source=str(rev), meta=str(meta), kcore=3, skip_bad_lines=True, num_candidates=2, few_shot=()),
                tmp_path / "o", progress=False)
    assert m["counts"]["bad_lines_skipped"] == 2
    assert m["counts"]["raw_interactions"] == len(BASE)


def test_unknown_format_lists_supported(tmp_path):
    f = _write_lines(tmp_path / "weird.json", [json.dumps({"foo": 1})], False)
    with pytest.raises(DataError, match="supported: amazon2014, amazon2018, amazon2023, recbole"):
        detect_format(f)


def test_filter_that_empties_is_named(tmp_path):
    rev, meta = make_amazon(tmp_path / "raw", "amazon2018")
    with pytest.raises(DataError, match="20-core"):
        prepare(PrepareOptions(source=str(rev), meta=str(meta), kcore=20), tmp_path / "o", progress=False)
    with pytest.raises(DataError, match="rating threshold"):
        prepare(PrepareOptions(source=str(rev), meta=str(meta), rating_threshold=5), tmp_path / "o", progress=False)


def test_missing_meta_file_and_existing_output(tmp_path):
    rev, meta = make_amazon(tmp_path / "raw", "amazon2018")
    with pytest.raises(DataError, match="--meta"):
        prepare(PrepareOptions(source=str(rev)), tmp_path / "o", progress=False)
    (tmp_path / "exists").mkdir()
    with pytest.raises(AllmrecError, match="--overwrite"):
        prepare(PrepareOptions(source=str(rev), meta=str(meta), kcore=3), tmp_path / "exists", progress=False)


def test_kcore_iterative_vs_single_pass(tmp_path):
    # item X is reviewed by 3 users (passes a one-pass 3-count) but one of them (u7) has only
    # X + Y, so the iterative 3-core cascades: u7 goes, then X has 2 users and goes too.
    rows = list(BASE[:25]) + [("u7", "X", 1, 5), ("u7", "Y", 2, 5), ("u1", "X", 60, 5), ("u2", "X", 60, 5)]
    meta = {**META, "X": {"title": "Ex"}, "Y": {"title": "Why"}}
    rev, mf = make_amazon(tmp_path / "raw", "amazon2018", rows=rows, meta=meta)
    it = prepare(PrepareOptions(source=str(rev), meta=str(mf), kcore=3, num_candidates=2, few_shot=(), missing_meta="fallback"),
                 tmp_path / "it", progress=False)
    sp = prepare(PrepareOptions(source=str(rev), meta=str(mf), kcore=3, kcore_mode="single-pass", num_candidates=2, few_shot=(), missing_meta="fallback"),
                 tmp_path / "sp", progress=False)
    assert "X" not in PreparedDataset.load(tmp_path / "it").split("items")["original_id"]
    assert "X" in PreparedDataset.load(tmp_path / "sp").split("items")["original_id"]
    assert it["counts"]["kcore_iterations"] >= 2


def test_clean_text():
    assert clean_text("<div>A &amp;amp; B</div>") == "A & B"
    assert clean_text(["first", "second"]) == "first second"
    assert clean_text("   ") is None
    assert clean_text("abcdef", 3) == "abc"


def test_candidates_are_valid_and_deterministic(tiny_data, tmp_path):
    ds = PreparedDataset.load(tiny_data)
    users = ds.split("users")
    full = {u: set(tr) | {v, t} for u, tr, v, t in zip(users["user_id"], users["train"], users["valid"], users["test"])}
    for split in ("valid", "test"):
        r = ds.eval_rows(split)
        assert r["candidates"].shape[1] == 20
        assert (r["candidates"][np.arange(len(r["target"])), r["target_index"]] == r["target"]).all()
        for u, c in zip(r["user_id"], r["candidates"]):
            assert len(set(c.tolist())) == 20
            assert len(set(c.tolist()) & full[int(u)]) == 1  # only the target was interacted with
    cold = ds.eval_rows("cold_user_test")
    assert len(cold["target"]) == 5 and all(len(h) == 2 for h in cold["history"])
    assert set(cold["user_id"].tolist()).isdisjoint(set(users["user_id"]))
    # few-shot subsets are seeded subsets of evaluation users
    assert len(ds.few_shot_users(8)) == 8 and set(ds.few_shot_users(8)) <= set(users["user_id"])
