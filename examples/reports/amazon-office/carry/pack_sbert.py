"""Pack a fine-tuned stage-1 SBERT for carry/: the tensors that differ from the all-MiniLM-L6-v2 asset, its key list and
its non-weight files; checks the rebuild is exact. Usage: python carry/pack_sbert.py work/s1-sasrec/sbert carry"""
import json, sys
from pathlib import Path
import torch
from safetensors.torch import load_file, save_file
from allmrec.assets import resolve_sbert
src, carry = Path(sys.argv[1]), Path(sys.argv[2])
ft = load_file(str(src / "model.safetensors"))
base = load_file(str(Path(resolve_sbert("all-minilm-l6-v2")) / "model.safetensors"))
changed = {k: v.contiguous() for k, v in ft.items() if k not in base or not torch.equal(v, base[k])}
save_file(changed, str(carry / "sbert_trained.safetensors"))
(carry / "sbert_keys.json").write_text(json.dumps(list(ft)))
dst = carry / "work" / "s1-sasrec" / "sbert"
dst.mkdir(parents=True, exist_ok=True)
for f in src.rglob("*"):
    if f.is_file() and f.name not in ("model.safetensors", "README.md"):
        (dst / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
        (dst / f.relative_to(src)).write_bytes(f.read_bytes())
rebuilt = {k: (changed[k] if k in changed else base[k]) for k in ft}
assert all(torch.equal(rebuilt[k], ft[k]) for k in ft), "rebuild differs"
print("sbert packed:", len(changed), "tensors")
