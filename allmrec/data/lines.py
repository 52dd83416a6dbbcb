"""Lines of a downloaded text file (plain or gzip), with the faults of real downloads turned into one-line errors.

Multi-GB review dumps arrive truncated (an interrupted download), corrupt, re-encoded or with Windows line endings.
:func:`read_lines` yields ``(line number, text)`` and handles each case explicitly, so that no reader ever shows a
bare ``EOFError`` / ``zlib.error`` traceback and no truncated file is read in part without saying so:

* a UTF-8 byte-order mark on the first line is dropped; ``\\r\\n`` endings are read as ``\\n``; blank lines are skipped;
* a line that is not valid UTF-8, or longer than :data:`MAX_LINE_BYTES`, is a bad line: a :class:`DataError` naming
  the file and line, or counted and skipped with ``skip_bad_lines``;
* a gzip stream that ends early or fails its CRC, or a ``.gz`` file that is not gzip at all, is a
  :class:`DataError` naming the file, the line and the compressed byte offset reached, and saying "re-download";
  with ``skip_bad_lines`` the lines read so far are kept, the cut line is counted as bad, and the truncation is
  recorded in :attr:`LineStats.truncated` (the caller reports it, e.g. in the dataset manifest).
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import DataError

#: longest line accepted (bytes). An Amazon review line is a few KB and a 2018 meta line at most a few MB; a longer
#: "line" is a file without line breaks (binary data, a JSON array instead of JSON lines).
MAX_LINE_BYTES = 64 << 20

_BOM = b"\xef\xbb\xbf"


@dataclass
class LineStats:
    """What :func:`read_lines` saw: lines yielded, bad lines skipped, and a truncation message (or None)."""

    lines: int = 0
    bad: int = 0
    truncated: str | None = None


def _open_binary(path: Path):
    try:
        if path.suffix == ".gz":
            return gzip.open(path, "rb")
        return open(path, "rb")
    except OSError as e:
        raise DataError(f"{path}: cannot open ({e.strerror or e})") from None


def _compressed_offset(handle) -> int | None:
    raw = getattr(handle, "fileobj", None)
    try:
        return raw.tell() if raw is not None else None
    except (OSError, ValueError):
        return None


def read_lines(path: Path, skip_bad_lines: bool = False, stats: LineStats | None = None) -> Iterator[tuple[int, str]]:
    """Yield ``(line number, line without its end)`` for every non-blank line of ``path``; see the module docstring."""
    path = Path(path)
    stats = stats if stats is not None else LineStats()
    lineno = 0
    with _open_binary(path) as handle:
        while True:
            try:
                raw = handle.readline(MAX_LINE_BYTES + 1)
            except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as e:
                offset = _compressed_offset(handle)
                where = f"after line {lineno}" + (f", compressed byte {offset:,}" if offset is not None else "")
                kind = "is not a gzip file" if isinstance(e, gzip.BadGzipFile) and lineno == 0 else "is truncated or corrupt"
                message = f"{path} {kind} ({where}: {str(e) or type(e).__name__})"
                if not skip_bad_lines or lineno == 0:
                    raise DataError(f"{message}; re-download it" + ("" if lineno == 0 else " (or pass --skip-bad-lines "
                                                                    "to keep the lines before the cut)")) from None
                stats.bad += 1  # the line that was cut
                stats.truncated = message
                return
            if not raw:
                return
            lineno += 1
            if len(raw) > MAX_LINE_BYTES:
                while raw and not raw.endswith(b"\n"):  # skip the rest of the over-long line
                    raw = handle.readline(MAX_LINE_BYTES)
                if not skip_bad_lines:
                    raise DataError(f"{path}:{lineno}: line longer than {MAX_LINE_BYTES >> 20} MiB (is this a JSON-lines "
                                    "file?); fix the file or pass --skip-bad-lines")
                stats.bad += 1
                continue
            if lineno == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM):]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                if not skip_bad_lines:
                    raise DataError(f"{path}:{lineno}: not valid UTF-8 (byte {e.start} of the line); is this the right "
                                    "file? Fix it or pass --skip-bad-lines") from None
                stats.bad += 1
                continue
            text = text.rstrip("\r\n")
            if not text.strip():
                continue
            stats.lines += 1
            yield lineno, text


__all__ = ["read_lines", "LineStats", "MAX_LINE_BYTES"]
