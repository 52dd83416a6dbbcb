"""Fault injection for writer tests: run a command in a subprocess that SIGKILLs itself at its k-th write event.

A write event is a Python-level file-system mutation: ``open`` for writing, ``os.rename`` / ``os.replace``,
``os.mkdir``, ``os.fsync``, ``shutil.rmtree``, ``os.unlink``. The child is started as
``python -c <bootstrap> <k> <count file> <module> <args...>``: the bootstrap patches those functions, then runs
``<module>.main(args)``. ``k = 0`` kills nowhere and writes the number of events seen to the count file, so a test
can first count a writer's events and then kill it at every one of them (or an even sample).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BOOTSTRAP = r'''
import atexit, builtins, importlib, os, shutil, signal, sys
kill_at, count_file, module = int(sys.argv[1]), sys.argv[2], sys.argv[3]
real_open = builtins.open
seen = [0]

def event():
    seen[0] += 1
    if seen[0] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

def counted(fn, applies=lambda *a, **k: True):
    def inner(*a, **k):
        if applies(*a, **k):
            event()
        return fn(*a, **k)
    return inner

def writing(file, mode="r", *a, **k):
    return isinstance(mode, str) and any(c in mode for c in "wax+")

builtins.open = counted(builtins.open, writing)
for name in ("rename", "replace", "mkdir", "fsync", "unlink"):
    setattr(os, name, counted(getattr(os, name)))
shutil.rmtree = counted(shutil.rmtree)
if kill_at == 0:
    atexit.register(lambda: real_open(count_file, "w").write(str(seen[0])))
sys.argv = [module] + sys.argv[4:]
sys.exit(importlib.import_module(module).main(sys.argv[1:]) or 0)
'''


def run_killed(kill_at: int, module: str, args: list[str], workdir: Path, env: dict | None = None,
               timeout: float = 300) -> tuple[int, int | None]:
    """Run ``module.main(args)`` killed at event ``kill_at`` → ``(returncode, events counted or None)``.

    ``kill_at`` 0: never killed, the events are counted (and the run must succeed); -1: never killed, nothing counted.
    """
    count_file = workdir / f".events-{kill_at}"
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-c", BOOTSTRAP, str(kill_at), str(count_file), module, *args],
                          cwd=workdir, env=full_env, capture_output=True, text=True, timeout=timeout)
    events = int(count_file.read_text()) if kill_at == 0 and count_file.exists() else None
    if kill_at == 0 and proc.returncode != 0:
        raise AssertionError(f"the uninterrupted run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc.returncode, events


def kill_points(events: int, at_most: int) -> list[int]:
    """Every event when there are few, else ``at_most`` evenly spaced ones (always the first and the last)."""
    if events <= at_most:
        return list(range(1, events + 1))
    step = (events - 1) / (at_most - 1)
    return sorted({1 + round(i * step) for i in range(at_most)})
