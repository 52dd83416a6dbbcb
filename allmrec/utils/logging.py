"""Logging and per-stage timing.

``get_logger`` gives the package logger (INFO to stderr by default, one line per event).
``StageTimer`` records wall-clock seconds per named stage so every command can report
per-stage timings in its output JSON.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time

_CONFIGURED = False


def get_logger(name: str = "allmrec") -> logging.Logger:
    global _CONFIGURED
    if not _CONFIGURED:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", datefmt="%H:%M:%S"))
        root = logging.getLogger("allmrec")
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False
        _CONFIGURED = True
    return logging.getLogger(name)


class StageTimer:
    """Collects ``{stage: seconds}``; use ``with timer("stage"):``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = round(self.seconds.get(stage, 0.0) + time.perf_counter() - start, 3)


__all__ = ["get_logger", "StageTimer"]
