"""Prepared datasets through the (loopback) Hub: `allmrec data push`, then `hub:REPO` back bit-identical."""

from __future__ import annotations

import json

import pytest

from fake_hub import _fake_hub_modules_cache, _fake_hub_server, fake_hub  # noqa: F401 (fixtures)

from allmrec.errors import AllmrecError, DataError


def cli(*argv: str) -> int:
    from allmrec.cli import main

    return main(list(argv))


def test_dataset_round_trip_through_the_hub(fake_hub, tiny_data, tmp_path, monkeypatch, capsys):
    from datasets import load_dataset

    from allmrec.data.dataset import PreparedDataset
    from allmrec.data.hub import dataset_fingerprint, hub_source

    monkeypatch.setenv("ALLMREC_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # as for a user: the CLI keeps other commands offline
    local = tmp_path / "local"
    import shutil

    shutil.copytree(tiny_data, local)
    before = dataset_fingerprint(local)
    assert cli("data", "push", "--data", str(local), "--repo-id", "ns/tiny-allmrec") == 0
    out = capsys.readouterr().out
    pushed = json.loads(out[out.rindex("{\n"):])
    assert pushed["fingerprint"] == before and hub_source(local)["repo_id"] == "ns/tiny-allmrec"
    files = fake_hub.files("ns/tiny-allmrec", repo_type="dataset")
    assert {"README.md", "manifest.json", "items.jsonl", "allmrec_dataset.json"} <= set(files)
    assert any(f.startswith("eval/test-") and f.endswith(".parquet") for f in files), sorted(files)
    card = files["README.md"].decode()
    assert "dataset_info:" in card and "configs:" in card  # datasets' own metadata kept
    assert before in card and "license: other" in card and "hub:ns/tiny-allmrec" in card

    # back, three ways: PreparedDataset.load, `data prepare --source hub:`, plain datasets
    ds = PreparedDataset.load("hub:ns/tiny-allmrec")
    assert dataset_fingerprint(ds.path) == before
    assert ds.candidate_fingerprint("test") == PreparedDataset.load(local).candidate_fingerprint("test")
    pulled = tmp_path / "pulled"
    assert cli("data", "prepare", "--source", "hub:ns/tiny-allmrec", "--out", str(pulled)) == 0
    assert dataset_fingerprint(pulled) == before
    from hub.card import _dataset_ids, load_manifest, training_data_section

    manifest = load_manifest(ds.path)  # a model card rendered with this data links the repository
    assert _dataset_ids(manifest, "tiny") == ["ns/tiny-allmrec"] and "hub:ns/tiny-allmrec" in training_data_section(manifest)
    eval_splits = set(load_dataset("ns/tiny-allmrec", "eval").keys())
    assert eval_splits == {"valid", "test"}


def test_pinned_revision_and_tampered_repository(fake_hub, tiny_data, tmp_path, monkeypatch):
    from huggingface_hub import HfApi

    from allmrec.data.hub import push_dataset, pull_dataset

    monkeypatch.setenv("ALLMREC_CACHE", str(tmp_path / "cache"))
    import shutil

    local = tmp_path / "local"
    shutil.copytree(tiny_data, local)
    first = push_dataset(local, "ns/pinned")
    HfApi().upload_file(path_or_fileobj=b'{"item_id": 1}\n', path_in_repo="items.jsonl", repo_id="ns/pinned", repo_type="dataset")
    assert pull_dataset(f"hub:ns/pinned@{first['commit']}").is_dir()  # the pin still has the pushed files
    with pytest.raises(DataError, match="fingerprint"):
        pull_dataset("hub:ns/pinned")
    with pytest.raises(DataError, match="no such dataset"):
        pull_dataset("hub:ns/absent")
    with pytest.raises(DataError, match="OWNER/NAME"):
        pull_dataset("hub:not-a-repo")


def test_push_offline_is_refused(tiny_data, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AllmrecError, match="HF_HUB_OFFLINE"):
        from allmrec.data.cli import _push

        class A:
            data, repo_id, private, commit_message = str(tiny_data), "ns/x", False, None

        _push(A)


def test_push_with_a_rejected_token_is_one_line(fake_hub, tiny_data, tmp_path):
    import shutil

    from allmrec.data.hub import push_dataset

    local = tmp_path / "local"
    shutil.copytree(tiny_data, local)
    with pytest.raises(AllmrecError, match="failed") as e:
        push_dataset(local, "ns/denied", token="hf_wrong")
    assert "\n" not in str(e.value) and "HF_TOKEN" in str(e.value)
    assert not (local / "hub_source.json").exists()  # nothing recorded for a push that did not happen
