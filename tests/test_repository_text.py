"""Every tracked text file speaks to users: no development history (``stop 12``, ``issue 7``, ``an earlier session``).

Findings are stated as results with their command and date. Citations of other projects' tracker threads keep their
``#`` (``their issues #11 and #15``), which this check leaves alone.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HISTORY = re.compile(
    r"\bstops? \d+\b"                                                  # "stop 16", "stops 12-14"
    r"|\bissues? \d+\b"                                                 # "issue 7" (not "issue #11": a citation)
    r"|\b(?:earlier|later|previous|next|another|this|last|same) session\b"
    r"|\bthe issue's\b|\bthe 0\.\d+ goal\b",
    re.IGNORECASE,
)
TEXT_SUFFIXES = {".py", ".md", ".txt", ".toml", ".cfg", ".ini", ".yml", ".yaml", ".sh", ".html", ".json", ".jinja", ""}


def tracked_text_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        names = [n for n in out.decode().split("\0") if n]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (an sdist): every file under the root
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts]
    return [ROOT / n for n in names if Path(n).suffix in TEXT_SUFFIXES and (ROOT / n).is_file()]


def history_mentions(text: str) -> list[str]:
    return [m.group(0) for m in HISTORY.finditer(text)]


def test_the_pattern_finds_history_and_spares_citations():
    assert history_mentions("measured in stop 16; see issue 7; an earlier session; the issue's bar") == [
        "stop 16", "issue 7", "earlier session", "the issue's"]
    assert history_mentions("their issues #11 and #15; a pytest fixture(scope='session'); stop-at-answer") == []


def test_no_tracked_file_tells_development_history():
    files = tracked_text_files()
    assert len(files) > 50  # the check really read the repository
    found = []
    for path in files:
        if path.resolve() == Path(__file__).resolve():  # this file spells out what it looks for
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            for word in history_mentions(line):
                found.append(f"{path.relative_to(ROOT)}:{lineno}: {word!r}")
    assert not found, "development history in tracked files:\n" + "\n".join(found[:50])
