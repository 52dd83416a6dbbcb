"""Hostile input files: truncated / corrupt gzip, invalid UTF-8, BOM, CRLF, over-long lines, binary garbage.

Every fault is tried on the review file and the meta file of every Amazon format, through ``prepare`` (both the fast
Arrow path and the line-by-line path), and must end in a one-line ``DataError`` naming the file (and the line or
compressed offset), or, with ``--skip-bad-lines``, in a dataset whose manifest says what was skipped or cut.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from allmrec.cli import main
from allmrec.data import lines as lines_module
from allmrec.data.lines import LineStats, read_lines
from allmrec.data.prepare import PrepareOptions, prepare
from allmrec.errors import DataError

from test_data_amazon import BASE, FORMATS, make_amazon


def _options(rev: Path, meta: Path, **kw) -> PrepareOptions:
    return PrepareOptions(source=str(rev), meta=str(meta), kcore=3, num_candidates=2, few_shot=(), **kw)


def _truncate(path: Path, keep: float = 0.6) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _big_gzip(path: Path, lines: list[str], copies: int = 200) -> None:
    """Rewrite ``path`` (a .gz) with the lines repeated, so a cut lands well inside the stream."""
    with gzip.open(path, "wb", compresslevel=1) as f:
        for _ in range(copies):
            f.write(("\n".join(lines) + "\n").encode())


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("which", ["reviews", "meta"])
def test_truncated_gzip_is_a_one_line_error_naming_the_file(tmp_path, fmt, which):
    rev, meta = make_amazon(tmp_path / "in", fmt)
    if which == "meta" and meta.suffix != ".gz":  # the 2018 fixture's meta is plain JSON lines: gzip it
        gz = meta.with_name(meta.name + ".gz")
        gz.write_bytes(gzip.compress(meta.read_bytes()))
        meta = gz
    target = rev if which == "reviews" else meta
    _truncate(target)
    with pytest.raises(DataError) as e:
        prepare(_options(rev, meta), tmp_path / "out", progress=False)
    message = str(e.value)
    assert target.name in message and "truncated or corrupt" in message and "re-download" in message
    assert "\n" not in message and not (tmp_path / "out").exists()


def test_truncated_gzip_with_skip_bad_lines_keeps_the_lines_and_says_so(tmp_path):
    rev, meta = make_amazon(tmp_path / "in", "amazon2023")
    rows = gzip.decompress(rev.read_bytes()).decode().splitlines()
    _big_gzip(rev, rows)
    _truncate(rev, 0.5)
    with pytest.raises(DataError, match="compressed byte"):
        prepare(_options(rev, meta), tmp_path / "a", progress=False)
    manifest = prepare(_options(rev, meta, skip_bad_lines=True), tmp_path / "b", progress=False)
    assert len(manifest["read_warnings"]) == 1 and "truncated" in manifest["read_warnings"][0]
    assert manifest["counts"]["bad_lines_skipped"] == 1  # the line that was cut
    assert 0 < manifest["counts"]["raw_interactions"] < 200 * len(BASE)


def test_a_gz_file_that_is_not_gzip(tmp_path):
    rev, meta = make_amazon(tmp_path / "in", "amazon2018")
    rev.write_bytes(b"\x00\x01garbage that is not gzip\xff" * 50)
    with pytest.raises(DataError, match=r"is not a gzip file.*re-download"):
        prepare(_options(rev, meta, format="amazon2018"), tmp_path / "out", progress=False)


def test_corrupt_gzip_crc(tmp_path):
    rev, meta = make_amazon(tmp_path / "in", "amazon2018")
    data = bytearray(rev.read_bytes())
    data[-6] ^= 0xFF  # a CRC byte of the trailer
    rev.write_bytes(bytes(data))
    with pytest.raises(DataError, match="truncated or corrupt"):
        prepare(_options(rev, meta, format="amazon2018"), tmp_path / "out", progress=False)


def _plain_reviews(tmp_path: Path, encode) -> tuple[Path, Path]:
    _, meta = make_amazon(tmp_path / "in", "amazon2018")
    rows = [json.dumps({"reviewerID": u, "asin": i, "unixReviewTime": t, "overall": float(r)}) for u, i, t, r in BASE]
    rev = tmp_path / "in" / "Plain.json"
    rev.write_bytes(encode(rows))
    return rev, meta


def test_bom_and_crlf_read_like_the_clean_file(tmp_path):
    clean, meta = _plain_reviews(tmp_path / "a", lambda rows: ("\n".join(rows) + "\n").encode())
    dirty, meta2 = _plain_reviews(tmp_path / "b", lambda rows: b"\xef\xbb\xbf" + ("\r\n".join(rows) + "\r\n").encode())
    a = prepare(_options(clean, meta), tmp_path / "oa", progress=False)
    b = prepare(_options(dirty, meta2), tmp_path / "ob", progress=False)
    assert a["counts"] == b["counts"] and a["candidate_fingerprints"] == b["candidate_fingerprints"]


def test_invalid_utf8_names_the_line_or_is_skipped(tmp_path):
    def encode(rows):
        data = [r.encode() for r in rows]
        data[4] = data[4].replace(b'"u1"', b'"u\xff\xfe"')
        return b"\n".join(data) + b"\n"

    rev, meta = _plain_reviews(tmp_path, encode)
    with pytest.raises(DataError, match=r"Plain\.json:5: not valid UTF-8"):
        prepare(_options(rev, meta), tmp_path / "a", progress=False)
    m = prepare(_options(rev, meta, skip_bad_lines=True), tmp_path / "b", progress=False)
    assert m["counts"]["bad_lines_skipped"] == 1 and m["counts"]["raw_interactions"] == len(BASE) - 1


def test_over_long_line(tmp_path, monkeypatch):
    monkeypatch.setattr(lines_module, "MAX_LINE_BYTES", 2000)
    rev, meta = _plain_reviews(tmp_path, lambda rows: ("\n".join(rows[:3] + ["{" + "x" * 5000 + "}"] + rows[3:]) + "\n").encode())
    with pytest.raises(DataError, match=r"Plain\.json:4: line longer than"):
        prepare(_options(rev, meta), tmp_path / "a", progress=False)
    m = prepare(_options(rev, meta, skip_bad_lines=True), tmp_path / "b", progress=False)
    assert m["counts"]["bad_lines_skipped"] == 1 and m["counts"]["raw_interactions"] == len(BASE)


def test_binary_garbage_and_empty_files_through_the_cli(tmp_path, capsys):
    _, meta = make_amazon(tmp_path / "in", "amazon2018")
    garbage = tmp_path / "in" / "Garbage.json"
    garbage.write_bytes(bytes(range(256)) * 20)
    empty = tmp_path / "in" / "Empty.json"
    empty.write_bytes(b"")
    for source in (garbage, empty):
        rc = main(["data", "prepare", "--source", str(source), "--meta", str(meta), "--format", "amazon2018",
                   "--out", str(tmp_path / source.stem)])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and source.name in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_read_lines_counts_what_it_yields(tmp_path):
    f = tmp_path / "x.txt"
    f.write_bytes(b"\xef\xbb\xbfone\r\n\r\n  \ntwo\nbad \xff\nthree")
    stats = LineStats()
    assert list(read_lines(f, skip_bad_lines=True, stats=stats)) == [(1, "one"), (4, "two"), (6, "three")]
    assert (stats.lines, stats.bad, stats.truncated) == (3, 1, None)
