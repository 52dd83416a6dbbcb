"""Rebuild ``work/`` of this report folder from ``carry/``: checks SHA256SUMS, copies the files, and rebuilds the
stage-1 SBERT (``work/s1-sasrec/sbert``) from the all-MiniLM-L6-v2 asset plus the 32 fine-tuned tensors kept here
(14 MB instead of 87 MB; ``pack_sbert.py`` writes them). Run from the report folder: ``python carry/restore.py``."""

import hashlib
import json
import shutil
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
report = here.parent
for line in (here / "SHA256SUMS").read_text().splitlines():
    digest, name = line.split(maxsplit=1)
    if hashlib.sha256((here / name).read_bytes()).hexdigest() != digest:
        sys.exit(f"carry/{name}: checksum mismatch")
shutil.copytree(here / "work", report / "work", dirs_exist_ok=True)

from safetensors.torch import load_file, save_file  # noqa: E402

from allmrec.assets import resolve_sbert  # noqa: E402

sbert = report / "work" / "s1-sasrec" / "sbert"
base = load_file(str(Path(resolve_sbert("all-minilm-l6-v2")) / "model.safetensors"))
trained = load_file(str(here / "sbert_trained.safetensors"))
keys = json.loads((here / "sbert_keys.json").read_text())
save_file({k: (trained[k] if k in trained else base[k]).contiguous() for k in keys}, str(sbert / "model.safetensors"),
          metadata={"format": "pt"})
print(f"restored {report / 'work'} (SBERT rebuilt: {len(trained)} fine-tuned of {len(keys)} tensors)")
