"""A loopback Hugging Face Hub for tests: the real ``huggingface_hub`` / ``transformers`` client code runs
end to end (create repo → preupload → NDJSON commit → model info → resolve/download, card validation)
against a stdlib ``http.server`` on ``127.0.0.1:<free port>``.

What it implements (the routes huggingface_hub 2.4 and transformers 5.x hit for push and load):

=========================================================  ==========================================================
``POST /api/repos/create``                                 ``{"url"}``; 409 **with** ``"url"`` when the repo exists
                                                           (``create_repo(exist_ok=True)`` reads it); ``visibility``
``POST /api/repos/delete``                                 delete a repo
``GET  /api/whoami-v2``                                    the fake user (401 without a valid token)
``POST /api/validate-yaml``                                card metadata checks (400 + message, like the Hub)
``POST /api/{type}s/{ns}/{name}/preupload/{rev}``          every file ``"regular"`` (so commits carry base64 content)
``POST /api/{type}s/{ns}/{name}/commit/{rev}``             NDJSON header/file/deletedFile/deletedFolder lines →
                                                           a new commit (40-hex ``commitOid``) on branch ``rev``
``POST /api/{type}s/{ns}/{name}/branch/{branch}``          create a branch (409 if it exists)
``GET  /api/{type}s/{ns}/{name}[/revision/{rev}]``         ``{"id", "sha", "siblings", ...}`` at a branch or commit
``GET  /api/{type}s/{ns}/{name}/tree/{rev}[/{path}]``      file listing (``list_repo_tree``)
``GET  /api/{type}s/{ns}/{name}/refs``                     branches (``list_repo_refs``)
``GET  /api/{type}s/{ns}/{name}/commits/{rev}``            history (``list_repo_commits``)
``POST /[{type}s/]{ns}/{name}.git/info/lfs/objects/batch``  git-lfs batch (``basic``): upload hrefs for ``*.parquet``
``PUT  /lfs-upload/{sha256}``                              the object's bytes (sha256-checked); commits reference it
                                                           with ``lfsFile`` lines
``HEAD|GET /[{type}s/]{ns}/{name}/resolve/{rev}/{path}``   200 + ``X-Repo-Commit``/``ETag``; 404 + ``X-Error-Code``
                                                           ``RepoNotFound`` / ``RevisionNotFound`` / ``EntryNotFound``
=========================================================  ==========================================================

Every commit is an immutable snapshot addressed by its sha, so ``revision=<sha>`` pins work after later
pushes. Writes need ``Authorization: Bearer <token>`` with the server's token (401 otherwise); private
repos are invisible (404 ``RepoNotFound``) without it. ``*.parquet`` files go through the git-lfs batch API
(``basic`` transfer, as ``datasets``' push uploads them); xet is disabled for the clients; every other file is
"regular" (base64 in the commit), so test files stay small. Unknown routes answer 404 and are recorded in ``FakeHub.unhandled`` so a test can assert none occurred.

The :func:`fake_hub` fixture starts one server per test session, resets it for each test and points the
already-imported client at it (``huggingface_hub`` reads ``HF_ENDPOINT``/``HF_HUB_OFFLINE``/``HF_HOME`` at
import time, so the fixture patches those module constants too, and sets the environment for subprocesses).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

FAKE_TOKEN = "hf_fake"
FAKE_USER = "fake-user"
REPO_TYPES = ("model", "dataset", "space")
#: files the fake Hub stores through the LFS batch API (``basic`` transfer; xet is disabled for its clients)
LFS_SUFFIXES = (".parquet",)
# Hub-side pipeline tags accepted by validate-yaml (a subset of the Hub's list, enough to catch typos).
PIPELINE_TAGS = {
    "text-generation", "text2text-generation", "text-classification", "token-classification", "fill-mask",
    "feature-extraction", "sentence-similarity", "question-answering", "summarization", "translation",
    "zero-shot-classification", "image-classification", "other",
}


def git_blob_oid(content: bytes) -> str:
    """The git object id of a blob: what the Hub returns as ``ETag`` for a regular (non-LFS) file."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Commit:
    sha: str
    parent: str | None
    summary: str
    files: dict[str, bytes]
    created_at: float = field(default_factory=time.time)


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        """A branch name or a full commit sha → commit (``None`` when unknown)."""
        sha = self.branches.get(revision, revision)
        return self.commits.get(sha)

    def commit(self, branch: str, summary: str, files: dict[str, bytes], parent: str | None) -> Commit:
        digest = hashlib.sha1()
        digest.update((parent or "").encode() + b"\0" + summary.encode() + b"\0" + str(time.time_ns()).encode())
        for path in sorted(files):
            digest.update(path.encode() + b"\0" + git_blob_oid(files[path]).encode())
        c = Commit(sha=digest.hexdigest(), parent=parent, summary=summary, files=files)
        self.commits[c.sha] = c
        self.branches[branch] = c.sha
        return c


class HubError(Exception):
    """An error answer: HTTP status, Hub ``X-Error-Code`` and message (sent as ``{"error": message}``)."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


class FakeHub:
    """In-memory Hub state plus the HTTP server thread. ``endpoint`` is the base URL for ``HF_ENDPOINT``."""

    def __init__(self, token: str = FAKE_TOKEN, user: str = FAKE_USER) -> None:
        self.token, self.user = token, user
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self.unhandled: list[tuple[str, str]] = []
        self.lfs_objects: dict[str, bytes] = {}  # sha256 → content, uploaded through the LFS batch API
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "FakeHub":
        hub = self

        class Handler(_Handler):
            fake = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def reset(self) -> None:
        with self.lock:
            self.repos.clear()
            self.lfs_objects.clear()
            self.requests.clear()
            self.unhandled.clear()

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "FakeHub.start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ------------------------------------------------------------------ inspection helpers for tests
    def repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        return self.repos[(repo_type, repo_id)]

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, bytes]:
        commit = self.repo(repo_id, repo_type).resolve(revision)
        if commit is None:
            raise KeyError(f"{repo_id}@{revision}")
        return dict(commit.files)

    def head(self, repo_id: str, branch: str = "main", repo_type: str = "model") -> str:
        return self.repo(repo_id, repo_type).branches[branch]

    # ------------------------------------------------------------------ routes (called with the lock held)
    def create_repo(self, body: dict, authed: bool) -> tuple[int, dict]:
        if not authed:
            raise HubError(401, "Invalid username or password.")
        name = body.get("name")
        if not name:
            raise HubError(400, "name is required")
        namespace = body.get("organization") or self.user
        repo_type = body.get("type") or "model"
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"invalid repo type {repo_type!r}")
        repo_id = f"{namespace}/{name}"
        url = self._repo_url(repo_type, repo_id)
        if (repo_type, repo_id) in self.repos:
            # The real Hub includes the url in its 409 body; create_repo(exist_ok=True) reads it.
            return 409, {"error": "You already created this repo", "url": url}
        # huggingface_hub 2.x sends "visibility": "private"|"public"; older clients sent "private": true
        private = body.get("visibility", "private" if body.get("private") else "public") != "public"
        repo = Repo(repo_type=repo_type, repo_id=repo_id, private=private)
        repo.commit("main", "initial commit", {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"}, None)
        self.repos[(repo_type, repo_id)] = repo
        return 200, {"url": url, "name": repo_id, "id": repo_id}

    def delete_repo(self, body: dict, authed: bool) -> tuple[int, dict]:
        if not authed:
            raise HubError(401, "Invalid username or password.")
        repo_id = f"{body.get('organization') or self.user}/{body.get('name')}"
        if self.repos.pop((body.get("type") or "model", repo_id), None) is None:
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return 200, {}

    def preupload(self, repo: Repo, revision: str, body: dict) -> tuple[int, dict]:
        if repo.resolve(revision) is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        files = [{"path": f["path"], "uploadMode": "lfs" if f["path"].endswith(LFS_SUFFIXES) else "regular",
                  "shouldIgnore": False} for f in body.get("files", [])]
        return 200, {"files": files}

    def lfs_batch(self, body: dict) -> tuple[int, dict]:
        """The git-lfs batch API (``basic`` transfer): an upload href per object not stored yet."""
        if body.get("operation") != "upload":
            raise HubError(400, "the fake Hub's LFS batch API only uploads")
        objects = []
        for o in body.get("objects", []):
            entry = {"oid": o["oid"], "size": o["size"], "authenticated": True}
            if o["oid"] not in self.lfs_objects:
                entry["actions"] = {"upload": {"href": f"{self.endpoint}/lfs-upload/{o['oid']}", "header": {}}}
            objects.append(entry)
        return 200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}

    def lfs_upload(self, oid: str, content: bytes) -> tuple[int, dict]:
        if hashlib.sha256(content).hexdigest() != oid:
            raise HubError(400, f"LFS object {oid[:12]}… does not match its content's sha256")
        self.lfs_objects[oid] = content
        return 200, {}

    def commit(self, repo: Repo, revision: str, raw: bytes, create_pr: bool) -> tuple[int, dict]:
        if create_pr:
            raise HubError(400, "pull requests are not supported by the fake Hub")
        base = repo.resolve(revision)
        if base is None or (revision not in repo.branches):
            raise HubError(404, f"Invalid rev id: {revision} (commits go to an existing branch)", "RevisionNotFound")
        lines = [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "the commit payload must start with a header line")
        header = lines[0]["value"]
        parent = header.get("parentCommit")
        if parent is not None and parent != base.sha:
            raise HubError(412, f"parentCommit {parent} is not the head of {revision}")
        files = dict(base.files)
        for line in lines[1:]:
            key, value = line.get("key"), line.get("value", {})
            if key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, f"unsupported encoding {value.get('encoding')!r}")
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                if value["path"] not in files:
                    raise HubError(404, f"{value['path']} does not exist", "EntryNotFound")
                del files[value["path"]]
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {p: c for p, c in files.items() if not p.startswith(prefix)}
            elif key == "lfsFile":
                if value.get("oid") not in self.lfs_objects:
                    raise HubError(422, f"LFS object {value.get('oid')} of {value.get('path')} was never uploaded")
                files[value["path"]] = self.lfs_objects[value["oid"]]
            else:
                raise HubError(400, f"unknown commit operation {key!r}")
        c = repo.commit(revision, header.get("summary") or "commit", files, base.sha)
        url = self._repo_url(repo.repo_type, repo.repo_id)
        return 200, {"commitUrl": f"{url}/commit/{c.sha}", "commitOid": c.sha, "pullRequestUrl": None}

    def create_branch(self, repo: Repo, branch: str, body: dict) -> tuple[int, dict]:
        if branch in repo.branches:
            raise HubError(409, f"Reference already exists: refs/heads/{branch}")
        start = repo.resolve(body.get("startingPoint") or "main")
        if start is None:
            raise HubError(404, "Invalid starting point", "RevisionNotFound")
        repo.branches[branch] = start.sha
        return 200, {}

    def info(self, repo: Repo, revision: str) -> tuple[int, dict]:
        c = self._commit_or_404(repo, revision)
        readme = c.files.get("README.md")
        card_data = _front_matter(readme.decode("utf-8")) if readme else None
        siblings = [{"rfilename": p, "size": len(b), "blobId": git_blob_oid(b)} for p, b in sorted(c.files.items())]
        info = {
            "id": repo.repo_id, "_id": repo.repo_id, "modelId": repo.repo_id, "author": repo.repo_id.split("/")[0],
            "sha": c.sha, "private": repo.private, "gated": False, "disabled": False, "downloads": 0, "likes": 0,
            "tags": list((card_data or {}).get("tags") or []), "siblings": siblings,
            "lastModified": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(c.created_at)),
        }
        if card_data:
            info["cardData"] = card_data
            for key in ("library_name", "pipeline_tag"):
                if key in card_data:
                    info[key] = card_data[key]
        if "config.json" in c.files:
            try:
                info["config"] = json.loads(c.files["config.json"])
            except json.JSONDecodeError:
                pass
        return 200, info

    def tree(self, repo: Repo, revision: str, path: str, recursive: bool) -> tuple[int, list]:
        c = self._commit_or_404(repo, revision)
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        entries, folders = [], set()
        for p, b in sorted(c.files.items()):
            if not p.startswith(prefix):
                continue
            rest = p[len(prefix):]
            if "/" in rest and not recursive:
                folders.add(prefix + rest.split("/", 1)[0])
                continue
            if recursive:
                parts = rest.split("/")[:-1]
                folders.update(prefix + "/".join(parts[: i + 1]) for i in range(len(parts)))
            entries.append({"type": "file", "oid": git_blob_oid(b), "size": len(b), "path": p})
        if prefix and not entries and not folders:
            raise HubError(404, f"{path} does not exist at {revision}", "EntryNotFound")
        entries += [{"type": "directory", "oid": "0" * 40, "size": 0, "path": f} for f in sorted(folders)]
        return 200, entries

    def refs(self, repo: Repo) -> tuple[int, dict]:
        branches = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": s} for b, s in sorted(repo.branches.items())]
        return 200, {"branches": branches, "converts": [], "tags": []}

    def history(self, repo: Repo, revision: str) -> tuple[int, list]:
        c = self._commit_or_404(repo, revision)
        out = []
        while c is not None:
            out.append({
                "id": c.sha, "title": c.summary, "message": "", "authors": [{"user": self.user}],
                "date": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(c.created_at)),
            })
            c = repo.commits.get(c.parent) if c.parent else None
        return 200, out

    def validate_yaml(self, body: dict) -> list[str]:
        """The Hub's card checks that matter here; returns the problems (empty = valid)."""
        return validate_card_metadata(body.get("content", ""), body.get("repoType") or "model")

    # ------------------------------------------------------------------ internals
    def _repo_url(self, repo_type: str, repo_id: str) -> str:
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        return f"{self.endpoint}/{prefix}{repo_id}"

    def _commit_or_404(self, repo: Repo, revision: str) -> Commit:
        c = repo.resolve(revision)
        if c is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return c

    def lookup(self, repo_type: str, repo_id: str, authed: bool) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not authed):
            raise HubError(404, f"Repository Not Found for url: {repo_id}.", "RepoNotFound")
        return repo


def _front_matter(text: str) -> dict | None:
    import yaml

    if not text.startswith("---"):
        return None
    parts = text.split("\n---", 1)
    if len(parts) < 2:
        return None
    data = yaml.safe_load(parts[0][3:])
    return data if isinstance(data, dict) else None


def validate_card_metadata(content: str, repo_type: str = "model") -> list[str]:
    """Checks the Hub applies to card metadata (YAML front matter): it parses, is a mapping, list fields are
    lists of strings, ``pipeline_tag`` is a known task, and every ``model-index`` result has a task type,
    a dataset name/type and metrics with a type and a value."""
    import yaml

    if not content.startswith("---"):
        return []  # no metadata block: the Hub accepts it (and warns)
    end = content.find("\n---", 3)
    if end < 0:
        return ["metadata block is not closed with '---'"]
    try:
        data = yaml.safe_load(content[3:end])
    except yaml.YAMLError as e:
        return [f"invalid YAML: {e}"]
    if data is None:
        return []
    if not isinstance(data, dict):
        return ["metadata must be a YAML mapping"]
    errors = []
    for key in ("tags", "datasets", "metrics", "language"):
        value = data.get(key)
        if value is not None and not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))):
            errors.append(f'"{key}" must be a string or a list of strings')
    for key in ("library_name", "license", "model_name"):
        if key in data and not isinstance(data[key], str):
            errors.append(f'"{key}" must be a string')
    base = data.get("base_model")
    if base is not None and not (isinstance(base, str) or (isinstance(base, list) and all(isinstance(v, str) for v in base))):
        errors.append('"base_model" must be a string or a list of strings')
    if "pipeline_tag" in data and data["pipeline_tag"] not in PIPELINE_TAGS:
        errors.append(f'"pipeline_tag" {data["pipeline_tag"]!r} is not a known task')
    index = data.get("model-index")
    if index is not None:
        if not isinstance(index, list):
            return errors + ['"model-index" must be a list']
        for i, entry in enumerate(index):
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                errors.append(f'"model-index[{i}].name" is required')
                continue
            for j, result in enumerate(entry.get("results") or []):
                where = f"model-index[{i}].results[{j}]"
                if not isinstance((result.get("task") or {}).get("type"), str):
                    errors.append(f'"{where}.task.type" is required')
                dataset = result.get("dataset") or {}
                if not isinstance(dataset.get("name"), str) or not isinstance(dataset.get("type"), str):
                    errors.append(f'"{where}.dataset" needs "name" and "type"')
                metrics = result.get("metrics")
                if not isinstance(metrics, list) or not metrics:
                    errors.append(f'"{where}.metrics" must be a non-empty list')
                    continue
                for k, m in enumerate(metrics):
                    if not isinstance(m, dict) or not isinstance(m.get("type"), str) or "value" not in m:
                        errors.append(f'"{where}.metrics[{k}]" needs "type" and "value"')
                    elif not isinstance(m["value"], (int, float, str)) or isinstance(m["value"], bool):
                        errors.append(f'"{where}.metrics[{k}].value" must be a number or a string')
    return errors


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub  # set by FakeHub.start
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # keep pytest output clean
        pass

    # ------------------------------------------------------------------ plumbing
    def _authed(self) -> bool:
        auth = self.headers.get("Authorization", "")
        return auth == f"Bearer {self.fake.token}"

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            return self.rfile.read(n)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return b""

    def _send(self, status: int, payload=None, headers: dict | None = None, raw: bytes | None = None, head: bool = False):
        body = raw if raw is not None else (b"" if payload is None else json.dumps(payload).encode("utf-8"))
        self.send_response(status)
        if raw is None:
            self.send_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)
        with self.fake.lock:
            self.fake.requests.append((self.command, self.path, status))

    def _error(self, e: HubError, head: bool = False):
        headers = dict(e.headers)
        if e.code:
            headers["X-Error-Code"] = e.code
        headers["X-Error-Message"] = e.message
        self._send(e.status, {"error": e.message}, headers, head=head)

    def _dispatch(self, head: bool = False):
        split = urlsplit(self.path)
        parts = [unquote(p) for p in split.path.split("/")[1:]]
        query = parse_qs(split.query)
        try:
            with self.fake.lock:
                handled = self._route(parts, query, head)
            if not handled:
                with self.fake.lock:
                    self.fake.unhandled.append((self.command, self.path))
                self._send(404, {"error": f"fake Hub: no route for {self.command} {split.path}"}, head=head)
        except HubError as e:
            self._error(e, head=head)

    def do_GET(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch(head=True)

    def do_POST(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    # ------------------------------------------------------------------ routing
    def _route(self, parts: list[str], query: dict, head: bool) -> bool:
        fake, method, authed = self.fake, self.command, self._authed()
        if parts[:1] == ["api"]:
            rest = parts[1:]
            if method == "POST" and rest == ["repos", "create"]:
                status, payload = fake.create_repo(json.loads(self._body() or b"{}"), authed)
                self._send(status, payload)
                return True
            if method in ("POST", "DELETE") and rest == ["repos", "delete"]:
                status, payload = fake.delete_repo(json.loads(self._body() or b"{}"), authed)
                self._send(status, payload)
                return True
            if method == "GET" and rest == ["whoami-v2"]:
                if not authed:
                    raise HubError(401, "Invalid credentials in Authorization header")
                self._send(200, {"type": "user", "name": fake.user, "fullname": "Fake User", "orgs": [],
                                 "auth": {"type": "access_token", "accessToken": {"role": "write"}}})
                return True
            if method == "POST" and rest == ["validate-yaml"]:
                problems = fake.validate_yaml(json.loads(self._body() or b"{}"))
                if problems:
                    self._send(400, raw="\n".join(problems).encode("utf-8"), headers={"Content-Type": "text/plain"})
                else:
                    self._send(200, {})
                return True
            if method == "GET" and rest == ["agent-harnesses"]:
                # huggingface_hub's agent detection; the real Hub may answer 404 too, and the client ignores it
                self._send(404, {"error": "Not found"})
                return True
            if len(rest) >= 3 and rest[0] in ("models", "datasets", "spaces"):
                return self._repo_api(rest[0][:-1], f"{rest[1]}/{rest[2]}", rest[3:], query, authed)
            return False
        if method == "PUT" and len(parts) == 2 and parts[0] == "lfs-upload":
            self._send(*fake.lfs_upload(parts[1], self._body()))
            return True
        if method == "POST" and len(parts) >= 6 and parts[-4:] == ["info", "lfs", "objects", "batch"] and parts[-5].endswith(".git"):
            if not authed:
                raise HubError(401, "Invalid username or password.")
            self._send(*fake.lfs_batch(json.loads(self._body() or b"{}")))
            return True
        # file routes: /{ns}/{name}/resolve/{rev}/{path} (models) or /{type}s/{ns}/{name}/resolve/...
        repo_type = "model"
        if parts and parts[0] in ("datasets", "spaces"):
            repo_type, parts = parts[0][:-1], parts[1:]
        if method in ("GET", "HEAD") and len(parts) >= 5 and parts[2] == "resolve":
            self._resolve(repo_type, f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]), authed, head)
            return True
        return False

    def _repo_api(self, repo_type: str, repo_id: str, rest: list[str], query: dict, authed: bool) -> bool:
        fake, method = self.fake, self.command
        if method == "POST" and rest[:1] in (["preupload"], ["commit"], ["branch"]) and not authed:
            raise HubError(401, "Invalid username or password.")
        repo = fake.lookup(repo_type, repo_id, authed)
        if method == "GET" and not rest:
            self._send(*fake.info(repo, "main"))
            return True
        if method == "GET" and len(rest) == 2 and rest[0] == "revision":
            self._send(*fake.info(repo, rest[1]))
            return True
        if method == "GET" and len(rest) >= 2 and rest[0] == "tree":
            recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
            self._send(*fake.tree(repo, rest[1], "/".join(rest[2:]), recursive))
            return True
        if method == "GET" and rest == ["refs"]:
            self._send(*fake.refs(repo))
            return True
        if method == "GET" and len(rest) == 2 and rest[0] == "commits":
            self._send(*fake.history(repo, rest[1]))
            return True
        if method == "POST" and len(rest) == 2 and rest[0] == "preupload":
            self._send(*fake.preupload(repo, rest[1], json.loads(self._body() or b"{}")))
            return True
        if method == "POST" and len(rest) == 2 and rest[0] == "commit":
            create_pr = query.get("create_pr", ["0"])[0] in ("1", "true")
            self._send(*fake.commit(repo, rest[1], self._body(), create_pr))
            return True
        if method == "POST" and len(rest) >= 2 and rest[0] == "branch":
            self._send(*fake.create_branch(repo, "/".join(rest[1:]), json.loads(self._body() or b"{}")))
            return True
        return False

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str, authed: bool, head: bool) -> None:
        fake = self.fake
        repo = fake.lookup(repo_type, repo_id, authed)
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        if path not in commit.files:
            # X-Repo-Commit on a 404 lets clients cache "this file does not exist at this commit".
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit.sha})
        content = commit.files[path]
        headers = {
            "X-Repo-Commit": commit.sha,
            "ETag": f'"{git_blob_oid(content)}"',
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "none",
        }
        self._send(200, headers=headers, raw=content, head=head)


# ---------------------------------------------------------------------------------------------- pytest
@pytest.fixture(scope="session")
def _fake_hub_server():
    hub = FakeHub().start()
    yield hub
    hub.stop()


@pytest.fixture(scope="session")
def _fake_hub_modules_cache(tmp_path_factory) -> Path:
    # One remote-code module cache for the whole session: transformers puts it on sys.path and imports
    # the `transformers_modules` package from it once, so it must outlive a single test's tmp dir.
    return tmp_path_factory.mktemp("hf_modules")


@pytest.fixture
def fake_hub(_fake_hub_server, _fake_hub_modules_cache, tmp_path, monkeypatch) -> FakeHub:
    """A fresh (empty) fake Hub, with the Hub client of this process and of its subprocesses pointed at it.

    Sets ``HF_ENDPOINT``, ``HF_TOKEN=hf_fake``, ``HF_HOME=<tmp>``, ``HF_HUB_OFFLINE=0`` for this test only.
    huggingface_hub computes its endpoint, offline flag and cache paths at import time, so the matching
    module constants (and transformers' remote-code cache path) are patched as well.
    """
    from huggingface_hub import constants, hf_api

    import transformers.dynamic_module_utils as dynamic_module_utils
    import transformers.utils.hub as transformers_hub

    hub = _fake_hub_server
    hub.reset()
    home = tmp_path / "hf_home"
    home.mkdir()
    env = {
        "HF_ENDPOINT": hub.endpoint,
        "HF_TOKEN": hub.token,
        "HF_HOME": str(home),
        "HF_HUB_OFFLINE": "0",
        "TRANSFORMERS_OFFLINE": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
        "HF_HUB_DISABLE_XET": "1",
        "HF_MODULES_CACHE": str(_fake_hub_modules_cache),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    for k in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_TOKEN_PATH", "HF_XET_CACHE", "HF_ASSETS_CACHE"):
        monkeypatch.delenv(k, raising=False)
    patches = {
        "ENDPOINT": hub.endpoint,
        "HUGGINGFACE_CO_URL_TEMPLATE": hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HUB_OFFLINE": False,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HUGGINGFACE_HUB_CACHE": str(home / "hub"),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HUGGINGFACE_ASSETS_CACHE": str(home / "assets"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "HF_XET_CACHE": str(home / "xet"),
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HUB_DISABLE_XET": True,
    }
    for name, value in patches.items():
        if hasattr(constants, name):
            monkeypatch.setattr(constants, name, value)
    monkeypatch.setattr(hf_api.api, "endpoint", hub.endpoint)
    import datasets.config as datasets_config  # read at its import too: datasets' push_to_hub / load_dataset

    for name, value in {"HF_ENDPOINT": hub.endpoint, "HF_HUB_OFFLINE": False, "HF_DATASETS_OFFLINE": False,
                        "HF_UPDATE_DOWNLOAD_COUNTS": False, "HF_DATASETS_CACHE": home / "datasets",
                        "HF_CACHE_HOME": str(home)}.items():
        monkeypatch.setattr(datasets_config, name, value)
    monkeypatch.setattr(dynamic_module_utils, "HF_MODULES_CACHE", str(_fake_hub_modules_cache))
    monkeypatch.setattr(transformers_hub, "HF_MODULES_CACHE", str(_fake_hub_modules_cache))
    return hub


__all__ = ["FakeHub", "FAKE_TOKEN", "FAKE_USER", "fake_hub", "git_blob_oid", "validate_card_metadata"]
