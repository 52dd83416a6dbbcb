"""The demo Space: ``app.py`` (Gradio), ``requirements.txt`` and the Space card ``README.md`` (a template filled by
:func:`space_files`). ``allmrec serve`` runs the app locally; ``allmrec push --space`` publishes the folder."""

from __future__ import annotations

import json
from pathlib import Path

SPACE_DIR = Path(__file__).parent


def space_files(model_repo: str, revision: str | None = None) -> dict[str, bytes]:
    """The files of a Space that serves ``model_repo`` (pinned to ``revision`` when given): path → content."""
    import gradio

    card = (SPACE_DIR / "README.md").read_text(encoding="utf-8")
    card = card.replace("{model_repo}", model_repo).replace("{gradio_version}", gradio.__version__)
    config = {"model": model_repo, "revision": revision}
    return {
        "app.py": (SPACE_DIR / "app.py").read_bytes(),
        "requirements.txt": (SPACE_DIR / "requirements.txt").read_bytes(),
        "README.md": card.encode("utf-8"),
        "space_config.json": (json.dumps(config, indent=2) + "\n").encode("utf-8"),
    }


__all__ = ["space_files", "SPACE_DIR"]
