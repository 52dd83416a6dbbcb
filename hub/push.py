"""Publish a checkpoint and its rendered model card to the Hugging Face Hub in **one commit**.

Order of work, so that nothing is uploaded when anything is wrong:

1. check the checkpoint (:func:`hub.checkpoint.inspect_checkpoint`), the results files and the manifest;
2. render the card from ``MODEL_CARD.md`` and check its metadata offline;
3. require a token and network access (``HF_HUB_OFFLINE`` unset/0);
4. ``create_repo(exist_ok=True)`` (+ ``create_branch`` for ``--revision``), then the Hub's own card check
   (``ModelCard.validate`` → ``POST /api/validate-yaml``);
5. one ``create_commit`` with the checkpoint files, ``README.md`` (the card) and ``results/*.json``, deleting
   files a previous push left that the new checkpoint no longer has (stale code or weights would otherwise
   be loaded next to the new ones).

A single commit (rather than ``push_to_hub`` + a card push) means a reader never sees weights without their
card or a half-updated repository, and ``revision=<commit sha>`` pins exactly what the card describes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Sequence

from allmrec.errors import AllmrecError
from allmrec.utils.logging import get_logger

from .card import load_manifest, load_results, render_card
from .checkpoint import CheckpointInfo, inspect_checkpoint

logger = get_logger("allmrec.hub")

#: remote files of these kinds are removed when the new checkpoint does not have them
MANAGED_SUFFIXES = (".safetensors", ".bin", ".py", ".json")
RESULTS_DIR = "results"


@dataclass
class PushResult:
    """What was published: repository, branch, the commit to pin, and the files it holds."""

    repo_id: str
    revision: str
    commit_sha: str
    commit_url: str
    files: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


@dataclass
class PreparedPush:
    """Everything checked and rendered locally, before any network access."""

    info: CheckpointInfo
    card: object  # huggingface_hub.ModelCard
    results_files: dict[str, bytes]


def _results_names(paths: Sequence[Path], results: Sequence[dict]) -> list[str]:
    """Repository paths ``results/<model>_<dataset>_<split>[_<mode>].json``, unique."""
    names, seen = [], set()
    for path, r in zip(paths, results):
        stem = "_".join(str(x) for x in (r.get("model_type"), r.get("dataset"), r.get("split"), r.get("mode")) if x)
        stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in stem) or path.stem
        name, i = f"{RESULTS_DIR}/{stem}.json", 2
        while name in seen:
            name, i = f"{RESULTS_DIR}/{stem}-{i}.json", i + 1
        seen.add(name)
        names.append(name)
    return names


def prepare_push(
    model_dir: str | os.PathLike,
    repo_id: str,
    results: Sequence[str | os.PathLike] = (),
    data: str | os.PathLike | None = None,
    license: str | None = "apache-2.0",
    template: str | os.PathLike | None = None,
) -> PreparedPush:
    """Steps 1–2 of the module docstring (no network): check inputs, render and check the card."""
    _check_repo_id(repo_id)
    info = inspect_checkpoint(model_dir)
    paths = [Path(p) for p in results]
    loaded = [load_results(p) for p in paths]
    names = _results_names(paths, loaded)
    if data is None:
        # the evaluator records the prepared dataset it read; use it when it is still there
        data = next((r["dataset_path"] for r in loaded if r.get("dataset_path") and (Path(r["dataset_path"]) / "manifest.json").is_file()), None)
    manifest = load_manifest(data) if data is not None else None
    if manifest is None:
        logger.warning("no prepared dataset given (--data): the card will not describe the training data")
    card = render_card(info, repo_id, list(zip(names, loaded)), manifest, license=license, template=template,
                       extra_files={n: p.stat().st_size for n, p in zip(names, paths)})
    files = {name: path.read_bytes() for name, path in zip(names, paths)}
    return PreparedPush(info=info, card=card, results_files=files)


def _check_repo_id(repo_id: str) -> None:
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts) or any(c in repo_id for c in " \\:"):
        raise AllmrecError(f"--repo-id {repo_id!r} must look like NAMESPACE/NAME (e.g. your-user/allmrec-ml100k)")


def _require_online_and_token(token: str | None) -> str:
    from huggingface_hub import constants, get_token

    if constants.HF_HUB_OFFLINE:
        raise AllmrecError("pushing needs the network but Hub offline mode is on (HF_HUB_OFFLINE=1); "
                           "run `HF_HUB_OFFLINE=0 allmrec push ...`")
    token = token or get_token()
    if not token:
        raise AllmrecError("no Hugging Face token: run `hf auth login` (or `huggingface-cli login`) or set HF_TOKEN")
    return token


def _hub_error(what: str, e: Exception) -> AllmrecError:
    """One line for a failed Hub call: the HTTP status and the server's message, plus what to do."""
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(e, HfHubHTTPError) and e.response is not None:
        status = e.response.status_code
        server = (getattr(e, "server_message", None) or "").strip().splitlines()
        detail = f"HTTP {status}" + (f": {server[0]}" if server else "")
        hint = {
            401: "the token was rejected; log in again (`hf auth login`) or set a valid HF_TOKEN",
            403: "the token cannot write to this namespace; use a write token or another --repo-id",
            404: "check --repo-id and --revision",
        }.get(status, "see the Hub's message above")
        return AllmrecError(f"{what} failed ({detail}); {hint}")
    return AllmrecError(f"{what} failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
                        f"(is the Hub reachable? HF_ENDPOINT={os.environ.get('HF_ENDPOINT', 'https://huggingface.co')})")


def push_checkpoint(
    model_dir: str | os.PathLike,
    repo_id: str,
    results: Sequence[str | os.PathLike] = (),
    data: str | os.PathLike | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    token: str | None = None,
    license: str | None = "apache-2.0",
    template: str | os.PathLike | None = None,
) -> PushResult:
    """Check, render and publish ``model_dir`` to ``repo_id`` (see the module docstring) → :class:`PushResult`."""
    prepared = prepare_push(model_dir, repo_id, results, data, license=license, template=template)
    token = _require_online_and_token(token)

    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    api = HfApi(token=token)
    branch = revision or "main"
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
    except Exception as e:  # noqa: BLE001 - every failure becomes one actionable line
        raise _hub_error(f"creating {repo_id}", e) from e
    if branch != "main":
        try:
            api.create_branch(repo_id, branch=branch, exist_ok=True)
        except Exception as e:  # noqa: BLE001
            raise _hub_error(f"creating branch {branch!r} of {repo_id}", e) from e
    try:
        prepared.card.validate()
    except ValueError as e:
        raise AllmrecError(f"the Hub rejected the model card's metadata: {str(e).strip().splitlines()[0]}") from e
    except Exception as e:  # noqa: BLE001
        raise _hub_error("validating the model card", e) from e

    info = prepared.info
    uploads = list(info.files) + ["README.md"] + sorted(prepared.results_files)
    operations = [CommitOperationAdd(path_in_repo=f, path_or_fileobj=str(info.path / f)) for f in info.files]
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(prepared.card).encode("utf-8")))
    operations += [CommitOperationAdd(path_in_repo=n, path_or_fileobj=b) for n, b in sorted(prepared.results_files.items())]
    try:
        remote = api.list_repo_files(repo_id, revision=branch)
    except Exception as e:  # noqa: BLE001
        raise _hub_error(f"listing the files of {repo_id}@{branch}", e) from e
    stale = sorted(
        f for f in remote
        if f not in uploads
        and (("/" not in f and PurePosixPath(f).suffix in MANAGED_SUFFIXES) or f.startswith(RESULTS_DIR + "/"))
    )
    operations += [CommitOperationDelete(path_in_repo=f) for f in stale]
    message = commit_message or f"Upload {'A-LLMRec checkpoint' if info.kind == 'allmrec' else 'TALLRec adapter'} with allmrec"
    try:
        commit = api.create_commit(repo_id, operations=operations, commit_message=message, revision=branch)
    except Exception as e:  # noqa: BLE001
        raise _hub_error(f"committing to {repo_id}@{branch}", e) from e
    logger.info("pushed %d files to %s@%s (commit %s)%s", len(uploads), repo_id, branch, commit.oid,
                f", removed stale {', '.join(stale)}" if stale else "")
    return PushResult(repo_id=repo_id, revision=branch, commit_sha=commit.oid, commit_url=commit.commit_url,
                      files=uploads, deleted=stale)


def push_space(model_repo: str, space_id: str | None = None, model_revision: str | None = None,
               private: bool = False, token: str | None = None) -> PushResult:
    """Publish the demo Space (``hub/space``) serving ``model_repo`` to ``space_id`` (default ``<model_repo>-demo``)."""
    from huggingface_hub import CommitOperationAdd, HfApi

    from .space import space_files

    token = _require_online_and_token(token)
    space_id = space_id or f"{model_repo}-demo"
    api = HfApi(token=token)
    try:
        api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    except Exception as e:  # noqa: BLE001
        raise _hub_error(f"creating the Space {space_id}", e) from e
    files = space_files(model_repo, model_revision)
    operations = [CommitOperationAdd(path_in_repo=n, path_or_fileobj=b) for n, b in files.items()]
    try:
        commit = api.create_commit(space_id, operations=operations, repo_type="space",
                                   commit_message=f"A-LLMRec demo for {model_repo}")
    except Exception as e:  # noqa: BLE001
        raise _hub_error(f"committing to the Space {space_id}", e) from e
    logger.info("pushed the demo Space %s (commit %s) serving %s", space_id, commit.oid, model_repo)
    return PushResult(repo_id=space_id, revision="main", commit_sha=commit.oid, commit_url=commit.commit_url,
                      files=sorted(files))


def write_card(prepared: PreparedPush, out: str | os.PathLike) -> Path:
    """Write the rendered card to ``out`` (atomic)."""
    from allmrec.utils.io import atomic_write_text

    out = Path(out)
    atomic_write_text(out, str(prepared.card))
    return out


def summary_json(result: PushResult) -> str:
    return json.dumps(
        {"repo_id": result.repo_id, "revision": result.revision, "commit": result.commit_sha, "url": result.commit_url,
         "files": result.files, "deleted": result.deleted},
        indent=2,
    )


__all__ = ["PushResult", "PreparedPush", "prepare_push", "push_checkpoint", "write_card", "summary_json"]
