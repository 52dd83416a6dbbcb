"""Prepared datasets on the Hugging Face Hub: ``allmrec data push`` and ``hub:REPO`` sources.

A prepared dataset (``allmrec data prepare``) goes up as what the Hub shows natively plus what allmrec needs to
get it back *bit-identical*:

* the ``DatasetDict`` splits as Parquet, through ``datasets``' own ``push_to_hub`` (the dataset viewer and
  ``load_dataset(REPO)`` work on it);
* ``manifest.json`` (every preparation option, input sha256s, counts) and ``items.jsonl``;
* ``allmrec_dataset.json``: the content fingerprint (:func:`dataset_fingerprint`) and the test candidates' fingerprint;
* ``README.md``: a dataset card (source, licence note, options, counts, fingerprints, how to load, how to cite),
  keeping the ``dataset_info`` / ``configs`` metadata ``datasets`` wrote.

``PreparedDataset.load("hub:REPO[@REVISION]")`` and ``allmrec data prepare --source hub:REPO --out D`` download a
snapshot into the allmrec cache (one folder per commit), rebuild the directory layout ``allmrec data prepare`` writes
and refuse it unless its fingerprint equals the one recorded at push time.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from ..errors import AllmrecError, DataError
from ..utils.io import atomic_directory, atomic_write_json
from ..utils.logging import get_logger

logger = get_logger(__name__)

HUB_PREFIX = "hub:"
FINGERPRINT_FILE = "allmrec_dataset.json"
#: where a directory came from / went to on the Hub (not part of the fingerprint); read by the model card
HUB_SOURCE_FILE = "hub_source.json"
#: licence notes by source (the card repeats them; the preparation does not change the licence)
LICENCE_NOTES = {
    "ml-100k": ("other", "MovieLens-100K is © GroupLens (University of Minnesota), distributed under its own terms of use "
                "(no redistribution without permission, non-commercial research use, cite Harper & Konstan 2015). "
                "Publish a prepared copy only where those terms allow it, e.g. as a private repository."),
    "amazon2023": ("other", "Amazon Reviews 2023 (McAuley Lab) is released for research use; see its dataset card."),
    "amazon2018": ("other", "Amazon Review Data 2018 (Ni et al.) is released for research use only."),
    "amazon2014": ("other", "Amazon product data 2014 (McAuley et al.) is released for research use only."),
}


def is_hub_source(source: str | Path) -> bool:
    return str(source).startswith(HUB_PREFIX)


def _parse(source: str) -> tuple[str, str | None]:
    spec = str(source)[len(HUB_PREFIX):]
    repo, _, revision = spec.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise DataError(f"{source!r}: write hub:OWNER/NAME (optionally @REVISION)")
    return repo, revision or None


# ---------------------------------------------------------------------------------------------- fingerprint
def dataset_fingerprint(path: str | Path) -> str:
    """sha256 over every split's columns (names, Arrow types and values), ``items.jsonl`` and the manifest's options
    and counts: equal fingerprints = the same prepared data, whatever the storage (Arrow on disk, Parquet on the Hub)."""
    from .dataset import PreparedDataset

    ds = PreparedDataset.load(path)
    h = hashlib.sha256()
    for name in sorted(ds.splits.keys()):
        table = ds.splits[name].data.table
        h.update(f"split {name} {table.num_rows}\n".encode())
        for column in sorted(table.column_names):
            col = table.column(column)
            h.update(f"{column}:{col.type}\n".encode())
            h.update(json.dumps(col.to_pylist(), ensure_ascii=False, separators=(",", ":")).encode())
    h.update((Path(path) / "items.jsonl").read_bytes())
    m = ds.manifest
    h.update(json.dumps({"options": m.get("options"), "counts": m.get("counts")}, sort_keys=True).encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------- push
#: the Hub config holding the valid / test rows (they share one feature set)
EVAL_CONFIG = "eval"


def _hub_layout(splits):
    """``(config, split, Dataset)`` per prepared split: ``eval``/{valid,test}; items, users, few_shot and
    cold_user_test (which has one more column) each their own config with one ``train`` split (``datasets`` wants one
    feature set per config)."""
    for name in splits.keys():
        yield (EVAL_CONFIG, name, splits[name]) if name in ("valid", "test") else (name, "train", splits[name])


def dataset_card(path: Path, repo_id: str, fingerprint: str, candidates: str) -> str:
    """The body of the dataset's README.md (the YAML header is merged in :func:`push_dataset`)."""
    from hub.card import training_data_section

    from .dataset import PreparedDataset

    ds = PreparedDataset.load(path)
    m = ds.manifest
    fmt = m.get("format") or "?"
    _, note = LICENCE_NOTES.get(m.get("name"), LICENCE_NOTES.get(fmt, ("other", "See the source dataset's own terms.")))
    sizes = "\n".join(f"| `{name}` | {ds.splits[name].num_rows:,} |" for name in ds.splits.keys())
    return f"""# {m.get('name')} prepared for A-LLMRec (allmrec)

`{m.get('name')}` ({fmt} format), preprocessed with [allmrec](https://github.com/allmrec/allmrec)
`allmrec data prepare`: filtering, k-core, leave-one-out split and **fixed candidate sets** (the target + 19 seeded
negatives per user), so that every model evaluated on this repository is scored on exactly the same candidates.

## Load

```python
from allmrec.data.dataset import PreparedDataset
ds = PreparedDataset.load("hub:{repo_id}")      # bit-identical to the pushed directory (fingerprint checked)
```

```bash
allmrec data prepare --source hub:{repo_id} --out data/{m.get('name')}
```

Without allmrec: `datasets.load_dataset("{repo_id}", "eval")` gives the `valid` / `test` rows with their
candidates; the configs `items`, `users`, `few_shot` (and `cold_user_test` where the data has cold users) hold the
other tables.

## Splits

| split | rows |
|---|---|
{sizes}

`items` = the catalogue (item id, title, SBERT text, training count, warm/mid/cold); `users` = each user's
time-ordered training items and held-out valid/test items; `valid` / `test` = one evaluation row per user with its
20 candidates; `few_shot` = seeded subsets of training users; `cold_user_test` (when present) = users with 3
interactions, held out of every other split.

## Fingerprints

- content (every split, `items.jsonl`, options, counts): `{fingerprint}`
- test candidates (user ids + candidate ids, as in every allmrec results file and model card): `{candidates}`

## Source and licence

{note}

## Preparation

{training_data_section(m)}

## Citation

```bibtex
@inproceedings{{kim2024allmrec,
  title     = {{Large Language Models meet Collaborative Filtering: An Efficient All-round LLM-based Recommender System}},
  author    = {{Kim, Sein and Kang, Hongseok and Choi, Seungyoon and Kim, Donghyun and Yang, Minchul and Park, Chanyoung}},
  booktitle = {{KDD}},
  year      = {{2024}}
}}
```
"""


def push_dataset(path: str | Path, repo_id: str, private: bool = False, token: str | None = None,
                 commit_message: str | None = None) -> dict:
    """Upload a prepared dataset directory to the dataset repository ``repo_id`` → ``{"repo_id", "commit", "url",
    "fingerprint"}``. Records the repository in ``PATH/hub_source.json`` (model cards link it). Hub failures (no or
    rejected token, unreachable endpoint) become one-line :class:`AllmrecError`."""
    from huggingface_hub.errors import HfHubHTTPError

    try:
        return _push_dataset(Path(path), repo_id, private, token, commit_message)
    except (HfHubHTTPError, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise AllmrecError(f"pushing {path} to the dataset repository {repo_id} failed: {first} "
                           f"(log in with `hf auth login` or set HF_TOKEN; check the network)") from e


def _push_dataset(path: Path, repo_id: str, private: bool, token: str | None, commit_message: str | None) -> dict:
    from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError
    from huggingface_hub.repocard import RepoCard

    from .dataset import PreparedDataset

    ds = PreparedDataset.load(path)
    fingerprint = dataset_fingerprint(path)
    candidates = ds.candidate_fingerprint("test")
    api = HfApi(token=token)
    url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    for config, split, table in _hub_layout(ds.splits):  # datasets needs one feature set per config
        table.push_to_hub(repo_id, config_name=config, split=split, private=private, token=token,
                          commit_message=commit_message or f"allmrec data push: {ds.name} {config}/{split}")
    try:  # the README datasets wrote: its YAML header (dataset_info, configs) must stay
        header = RepoCard.load(hf_hub_download(repo_id, "README.md", repo_type="dataset", token=token)).data.to_dict()
    except EntryNotFoundError:
        header = {}
    licence, _ = LICENCE_NOTES.get(ds.name, LICENCE_NOTES.get(ds.manifest.get("format"), ("other", "")))
    header.update(license=licence, tags=sorted(set(header.get("tags", [])) | {"recommendation", "allmrec", "a-llmrec"}),
                  pretty_name=f"{ds.name} (allmrec prepared)")
    from huggingface_hub import DatasetCardData

    card = RepoCard(f"---\n{DatasetCardData(**header).to_yaml()}\n---\n\n" + dataset_card(path, repo_id, fingerprint, candidates))
    meta = {"fingerprint": fingerprint, "test_candidate_fingerprint": candidates, "name": ds.name,
            "layout": {split if config == EVAL_CONFIG else config: [config, split] for config, split, _ in _hub_layout(ds.splits)},
            "allmrec_version": ds.manifest.get("allmrec_version")}
    ops = [
        CommitOperationAdd("manifest.json", str(path / "manifest.json")),
        CommitOperationAdd("items.jsonl", str(path / "items.jsonl")),
        CommitOperationAdd(FINGERPRINT_FILE, json.dumps(meta, indent=2).encode()),
        CommitOperationAdd("README.md", str(card).encode()),
    ]
    info = api.create_commit(repo_id, ops, repo_type="dataset",
                             commit_message=commit_message or f"allmrec data push: {ds.name} manifest, catalogue, card")
    atomic_write_json(path / HUB_SOURCE_FILE, {"repo_id": repo_id, "revision": info.oid})
    return {"repo_id": repo_id, "commit": info.oid, "url": str(url), "fingerprint": fingerprint}


# ---------------------------------------------------------------------------------------------- pull
def pull_dataset(source: str, out: str | Path | None = None, token: str | None = None) -> Path:
    """``hub:REPO[@REVISION]`` → a local prepared-dataset directory (``out``, else the allmrec cache, one folder per
    commit); its fingerprint must equal the one recorded at push time."""
    from datasets import load_dataset
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    from ..assets import cache_dir

    repo, revision = _parse(source)
    try:
        sha = HfApi(token=token).dataset_info(repo, revision=revision).sha
        meta_file = hf_hub_download(repo, FINGERPRINT_FILE, repo_type="dataset", revision=sha, token=token)
    except (RepositoryNotFoundError, RevisionNotFoundError) as e:
        raise DataError(f"{source}: no such dataset repository or revision on the Hub ({type(e).__name__})") from e
    except EntryNotFoundError as e:
        raise DataError(f"{source} has no {FINGERPRINT_FILE}: it was not pushed with `allmrec data push`") from e
    except Exception as e:  # offline, unreachable endpoint
        raise AllmrecError(f"{source}: cannot reach the Hub ({type(e).__name__}: {str(e).splitlines()[0][:160]}); "
                           f"go online or use a local prepared directory") from e
    expected = json.loads(Path(meta_file).read_text(encoding="utf-8"))["fingerprint"]
    dest = Path(out) if out is not None else cache_dir() / "hub-datasets" / repo.replace("/", "--") / sha
    if out is None and (dest / HUB_SOURCE_FILE).is_file():
        return dest  # a complete earlier download of this commit (written atomically, checked then)
    from datasets import DatasetDict

    layout = json.loads(Path(meta_file).read_text(encoding="utf-8"))["layout"]
    splits = DatasetDict({name: load_dataset(repo, config, split=split, revision=sha, token=token)
                          for name, (config, split) in layout.items()})
    with atomic_directory(dest, overwrite=out is not None) as tmp:
        splits.save_to_disk(str(tmp / "dataset"))
        for name in ("manifest.json", "items.jsonl"):
            shutil.copyfile(hf_hub_download(repo, name, repo_type="dataset", revision=sha, token=token), tmp / name)
        got = dataset_fingerprint(tmp)
        if got != expected:
            raise DataError(f"{source}@{sha[:12]}: the downloaded data's fingerprint {got[:12]}… differs from the pushed "
                            f"one {expected[:12]}…; the repository was edited outside allmrec — re-push it")
        atomic_write_json(tmp / HUB_SOURCE_FILE, {"repo_id": repo, "revision": sha})
    logger.info("dataset %s@%s → %s (fingerprint %s…)", repo, sha[:12], dest, expected[:12])
    return dest


def hub_source(path: str | Path) -> dict | None:
    """``{"repo_id", "revision"}`` of the Hub repository a prepared directory was pushed to / pulled from."""
    file = Path(path) / HUB_SOURCE_FILE
    try:
        return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else None
    except json.JSONDecodeError:
        return None


__all__ = ["push_dataset", "pull_dataset", "dataset_fingerprint", "hub_source", "is_hub_source", "HUB_PREFIX"]
