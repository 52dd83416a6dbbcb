#!/usr/bin/env bash
# Hub-native checks on a trained ml-100k checkpoint (runs/s2_lora_step40 of the README's LoRA section):
# re-save it with the current code (canonical base-LLM id + pipeline task), load it in a venv WITHOUT allmrec with no
# extra argument (an HF cache holding HuggingFaceTB/SmolLM2-135M-Instruct stands for a Hub download), then run
# pipeline() for one test user.
set -euo pipefail
cd "$(dirname "$0")/.."
source .venv/bin/activate
export HF_HUB_OFFLINE=1
# 1. the checkpoint saved by the current code: canonical base-LLM id + provenance + the pipeline task
python - <<'PY'
from allmrec.assets import asset_provenance, canonical_id
from allmrec.model import ALLMRecForRecommendation
from allmrec.utils.io import atomic_directory
m = ALLMRecForRecommendation.from_pretrained("runs/s2_lora_step40")
m.config.llm_name_or_path = canonical_id("smollm2-135m-instruct")
m.config.llm_source = asset_provenance("smollm2-135m-instruct")
with atomic_directory("runs/s2_lora_hub", overwrite=True) as tmp:
    m.save_pretrained(tmp)
print("resaved runs/s2_lora_hub:", m.config.llm_name_or_path, m.config.llm_source["sha256"][:12])
PY
# 2. a bare venv (no allmrec) with an HF cache holding the base LLM under its Hub id
rm -rf /tmp/bare /tmp/bare_hf
python3 -m venv --without-pip /tmp/bare
site=$(/tmp/bare/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" > "$site/main-venv-packages.pth"
src=$(python -c "from allmrec.assets import resolve_llm; print(resolve_llm('smollm2-135m-instruct'))")
snap=/tmp/bare_hf/hub/models--HuggingFaceTB--SmolLM2-135M-Instruct/snapshots/0000000000000000000000000000000000000001
mkdir -p "$snap" /tmp/bare_hf/hub/models--HuggingFaceTB--SmolLM2-135M-Instruct/refs
for f in "$src"/*; do ln -s "$f" "$snap/$(basename "$f")"; done
echo -n 0000000000000000000000000000000000000001 > /tmp/bare_hf/hub/models--HuggingFaceTB--SmolLM2-135M-Instruct/refs/main
echo "--- bare venv, no allmrec, offline, HF cache holds HuggingFaceTB/SmolLM2-135M-Instruct"
CKPT="$PWD/runs/s2_lora_hub"
(cd /tmp && env -u PYTHONPATH CKPT="$CKPT" HF_HOME=/tmp/bare_hf HF_HUB_OFFLINE=1 /tmp/bare/bin/python - <<'PY'
import json, os
try:
    import allmrec
    raise SystemExit("allmrec importable")
except ImportError:
    print("import allmrec -> ImportError (as intended)")
from transformers import AutoModel, pipeline
m = AutoModel.from_pretrained(os.environ["CKPT"], trust_remote_code=True)
print(type(m).__module__, type(m).__name__, "base LLM:", m.config.llm_name_or_path)
rec = pipeline(model=os.environ["CKPT"], trust_remote_code=True)
print("pipeline task:", rec.task, type(rec).__name__)
PY
)
# 3. pipeline() output for one ml-100k test user (main venv)
cd "$(dirname "$0")/.."
python - <<'PY'
import json
from transformers import pipeline
from allmrec.data.dataset import PreparedDataset
ds = PreparedDataset.load("runs/data/ml-100k")
rows = ds.eval_rows("test")
i = 0
titles = ds.titles
history = [titles[j] for j in rows["history"][i][-10:]]
candidates = [titles[j] for j in rows["candidates"][i]]
rec = pipeline(model="runs/s2_lora_hub", trust_remote_code=True)
print("user", int(rows["user_id"][i]), "last watched:", history[-3:])
print("target:", titles[int(rows["target"][i])])
out = rec({"history": [int(j) for j in rows["history"][i]], "candidates": candidates}, top_k=5)
print(json.dumps(out, indent=1))
PY
