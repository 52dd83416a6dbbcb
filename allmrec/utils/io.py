"""Atomic file and directory writes.

A crash (or Ctrl-C) during a save must never leave a half-written checkpoint or dataset that a
later run loads. Everything is written into a temporary sibling and moved into place with one
``os.replace``/``rename``, which is atomic on POSIX within one file system.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from ..errors import AllmrecError
from .logging import get_logger

logger = get_logger(__name__)


#: errno values that mean "no room to write" (disk full, file-size limit, quota): a one-line error, nothing partial
_NO_SPACE = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _no_space_error(target: Path, error: OSError) -> AllmrecError:
    return AllmrecError(f"cannot write {target}: {error.strerror or error} (disk full or file-size limit?); nothing was "
                        "written there: free space and re-run")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _owner_pid(name: str) -> int | None:
    # temporaries are named .<final>.tmp-<pid>-<random> / .<final>.old-<pid>(-<random>)
    match = re.search(r"\.(?:tmp|old)-(\d+)(?:-|$)", name)
    return int(match.group(1)) if match else None


def clean_stale_temporaries(final: str | os.PathLike) -> list[str]:
    """Remove what dead writers of ``final`` left next to it; return one line per thing done.

    A writer killed (SIGKILL, power loss) inside :func:`atomic_directory` leaves ``.NAME.tmp-PID-*`` (an incomplete
    result: deleted) and, if it died between its two renames of an ``--overwrite``, ``.NAME.old-PID`` (the previous
    *complete* result: moved back to ``NAME`` when ``NAME`` is missing). Temporaries of live processes are left alone.
    """
    final = Path(final)
    parent = final.parent
    if not parent.is_dir():
        return []
    done = []
    for entry in sorted(parent.glob(f".{glob.escape(final.name)}.*")):
        if entry.name == f".{final.name}.lock":
            if _remove_unheld_lock(entry):
                done.append(f"removed {entry.name}, the lock of a writer that died")
            continue
        pid = _owner_pid(entry.name[len(final.name) + 1:])
        if pid is None or pid == os.getpid() or _pid_alive(pid):
            continue
        if ".old-" in entry.name and not final.exists():
            os.rename(entry, final)
            done.append(f"restored the previous complete {final} from {entry.name} (a replacing run died mid-swap)")
        elif entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
            done.append(f"removed {entry.name}, left by a dead process (pid {pid})")
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
            done.append(f"removed {entry.name}, left by a dead process (pid {pid})")
    for line in done:
        logger.warning(line)
    return done


def _try_lock(lock_path: Path):
    """An open handle on ``lock_path`` holding its exclusive flock, or None while another handle holds it (flock locks
    belong to open file descriptions, so this fails while *this* process holds it through another handle too)."""
    handle = open(lock_path, "a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def _remove_unheld_lock(lock_path: Path) -> bool:
    """Remove a lock file nobody holds (its writer was killed); False when it is held (by us or another writer)."""
    try:
        handle = _try_lock(lock_path)
    except OSError:
        return False
    if handle is None:
        return False
    with contextlib.suppress(FileNotFoundError):
        os.unlink(lock_path)
    handle.close()
    return True


@contextlib.contextmanager
def _exclusive(final: Path) -> Iterator[None]:
    """Hold ``.NAME.lock`` next to ``final`` for the whole write: a second writer of the same path fails at once."""
    lock_path = final.parent / f".{final.name}.lock"
    while True:
        handle = _try_lock(lock_path)
        if handle is None:
            raise AllmrecError(f"another process is writing {final} right now; wait for it (its result will be at "
                               f"{final}) or choose another output") from None
        try:  # the holder before us removes the file on release: make sure we locked the file that is there now
            if os.fstat(handle.fileno()).st_ino == os.stat(lock_path).st_ino:
                break
        except FileNotFoundError:
            pass
        handle.close()
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_path)  # removed while still held, so no one can lock a file that is about to vanish
        handle.close()


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``final`` only if the block finishes.

    The temp dir lives next to ``final`` (same file system, so the rename is atomic). On error it
    is removed and ``final`` is left untouched. With ``overwrite`` an existing ``final`` is
    replaced only after the new one is complete. Two writers of one ``final`` at once: the second fails at once
    with a one-line error (a lock file next to it). Leftovers of writers that were killed are cleaned first
    (:func:`clean_stale_temporaries`). A full disk is a one-line error and leaves nothing behind.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(final):
        clean_stale_temporaries(final)
        if final.exists() and not overwrite:
            raise AllmrecError(f"output directory {final} already exists; pass --overwrite to replace it")
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{os.getpid()}-", dir=final.parent))
        try:
            yield tmp
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if e.errno in _NO_SPACE:
                raise _no_space_error(final, e) from None
            raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if final.exists():
            if not overwrite:  # appeared while we wrote (a writer that did not take the lock): keep it
                shutil.rmtree(tmp, ignore_errors=True)
                raise AllmrecError(f"{final} was written by another process while this one ran; kept that one")
            trash = final.parent / f".{final.name}.old-{os.getpid()}"
            os.rename(final, trash)  # a kill between these two renames is repaired by the next writer (see above)
            os.rename(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.rename(tmp, final)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file + ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno in _NO_SPACE:
            raise _no_space_error(path, e) from None
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False) + "\n")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


__all__ = ["clean_stale_temporaries", "atomic_directory", "atomic_write_text", "atomic_write_json", "sha256_file"]
