"""The real MovieLens-100K through `allmrec data prepare`, determinism, and the data CLI."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow.parquet  # noqa: F401  (datasets needs pyarrow; imported here to fail early if missing)

from allmrec.cli import main
from allmrec.data.dataset import PreparedDataset


def _arrow_bytes(d, split):
    ds = PreparedDataset.load(d).split(split)
    return hashlib.sha256(np.asarray(ds["candidates"], dtype=np.int64).tobytes()).hexdigest()


def test_ml100k_statistics(ml100k_data):
    ds = PreparedDataset.load(ml100k_data)
    c = ds.manifest["counts"]
    # iterative 5-core on ML-100K (every user already has >= 20 ratings; 333 rare items go)
    assert (c["users"], c["items"], c["interactions"]) == (943, 1349, 99287)
    assert c["test_users_warm"] + c["test_users_mid"] + c["test_users_cold"] == c["eval_users"] == 943
    assert c["cold_users"] == 0  # no ML-100K user has exactly 3 ratings
    assert ds.domain == "movie"
    assert ds.titles[1].endswith(")")  # "Title (year)"
    seq_lens = [len(s) + 2 for s in ds.train_sequences]
    assert min(seq_lens) >= 5 and sum(seq_lens) == 99287


def test_prepare_twice_is_byte_identical(tmp_path):
    for name in ("a", "b"):
        assert main(["data", "prepare", "--source", "ml-100k", "--out", str(tmp_path / name)]) == 0
    for split in ("valid", "test"):
        assert _arrow_bytes(tmp_path / "a", split) == _arrow_bytes(tmp_path / "b", split)
    fa = PreparedDataset.load(tmp_path / "a").manifest["candidate_fingerprints"]
    fb = PreparedDataset.load(tmp_path / "b").manifest["candidate_fingerprints"]
    assert fa == fb
    # the arrow files themselves are byte-identical too
    for split in ("valid", "test", "items", "users"):
        fa_ = sorted((tmp_path / "a" / "dataset" / split).glob("*.arrow"))
        fb_ = sorted((tmp_path / "b" / "dataset" / split).glob("*.arrow"))
        assert [f.read_bytes() for f in fa_] == [f.read_bytes() for f in fb_]
    # a different seed gives different candidates
    assert main(["data", "prepare", "--source", "ml-100k", "--out", str(tmp_path / "c"), "--seed", "7"]) == 0
    assert _arrow_bytes(tmp_path / "c", "test") != _arrow_bytes(tmp_path / "a", "test")


def test_cli_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "exists").mkdir()
    assert main(["data", "prepare", "--source", "ml-100k", "--out", str(tmp_path / "exists")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "--overwrite" in err[0]
    assert main(["data", "prepare", "--source", str(tmp_path / "nope.json"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["data", "stats", str(tmp_path)]) == 2
    assert "not a prepared dataset" in capsys.readouterr().err


def test_data_stats_prints_table2_rows(ml100k_data, capsys):
    assert main(["data", "stats", str(ml100k_data)]) == 0
    out = capsys.readouterr().out
    for row in ("users", "items", "interactions", "density", "warm target", "cold target"):
        assert row in out
    assert "943" in out and "1349" in out


def test_interrupted_prepare_leaves_nothing(tmp_path, monkeypatch):
    import datasets

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(datasets.DatasetDict, "save_to_disk", boom)
    try:
        main(["data", "prepare", "--source", "ml-100k", "--out", str(tmp_path / "d")])
    except RuntimeError:
        pass
    assert not (tmp_path / "d").exists()
    assert not list(tmp_path.glob(".d.tmp-*"))
