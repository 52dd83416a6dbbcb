#!/usr/bin/env bash
# The whole A-LLMRec pipeline on one Amazon dataset at paper scale, under `accelerate launch`:
#   prepare → SASRec → stage 1 → stage 2 (A-LLMRec) → TALLRec → evaluate everything (generate + rank).
#
#   examples/paper_scale/pipeline.sh NAME REVIEWS_FILE META_FILE
#
# Environment (defaults = the paper's setting):
#   OUT=runs/NAME            where everything goes
#   LLM=facebook/opt-6.7b    any causal LM id or local path
#   SBERT=sentence-transformers/nq-distilbert-base-v1
#   ACCELERATE_CONFIG=examples/accelerate/multi_gpu_ddp.yaml   NPROC=4
#   LLM_QUANT=none|8bit|4bit  (the authors loaded OPT-6.7B in 8-bit)
#   STATE_EVERY=500          optimisation steps between resumable training states
#
# Re-running the script continues where it stopped: finished steps are skipped (OUT/.done-<step>), an
# interrupted training resumes from its newest state (OUT/<step>-state/) with the same arguments.
set -euo pipefail
NAME=${1:?dataset name}; REVIEWS=${2:?reviews file}; META=${3:?meta file}
OUT=${OUT:-runs/$NAME}
LLM=${LLM:-facebook/opt-6.7b}
SBERT=${SBERT:-sentence-transformers/nq-distilbert-base-v1}
ACCELERATE_CONFIG=${ACCELERATE_CONFIG:-examples/accelerate/multi_gpu_ddp.yaml}
NPROC=${NPROC:-4}
LLM_QUANT=${LLM_QUANT:-none}
STATE_EVERY=${STATE_EVERY:-500}
LAUNCH=(accelerate launch --config_file "$ACCELERATE_CONFIG" --num_processes "$NPROC" -m allmrec)
mkdir -p "$OUT/results"

train_step() {  # train_step STEP OUTDIR command...  (skips finished steps, resumes interrupted ones)
  local step=$1 dir=$2; shift 2
  if [ -f "$OUT/.done-$step" ]; then echo "== $step: done, skipped"; return; fi
  local resume=()
  if [ -d "$dir-state" ]; then resume=(--resume-from "$dir-state"); echo "== $step: resuming from $dir-state"; fi
  echo "== $step: $*"
  local t0=$SECONDS
  "$@" "${resume[@]}"
  echo "== $step: $((SECONDS - t0)) s" | tee -a "$OUT/timings.txt"
  touch "$OUT/.done-$step"
}

if [ ! -f "$OUT/.done-prepare" ]; then
  allmrec data prepare --source "$REVIEWS" --meta "$META" --name "$NAME" --out "$OUT/data" --overwrite
  touch "$OUT/.done-prepare"
fi
train_step sasrec  "$OUT/sasrec"  "${LAUNCH[@]}" train cf --data "$OUT/data" --model sasrec --out "$OUT/sasrec" \
  --save-state-every "$STATE_EVERY" --no-progress
train_step stage1  "$OUT/stage1"  "${LAUNCH[@]}" train stage1 --data "$OUT/data" --cf "$OUT/sasrec" --sbert "$SBERT" \
  --out "$OUT/stage1" --save-state-every "$STATE_EVERY" --no-progress
train_step stage2  "$OUT/allmrec" "${LAUNCH[@]}" train stage2 --data "$OUT/data" --stage1 "$OUT/stage1" --llm "$LLM" \
  --out "$OUT/allmrec" --llm-quantization "$LLM_QUANT" --gradient-checkpointing --save-state-every "$STATE_EVERY" --no-progress
train_step tallrec "$OUT/tallrec" "${LAUNCH[@]}" train tallrec --data "$OUT/data" --llm "$LLM" --out "$OUT/tallrec" \
  --llm-quantization "$LLM_QUANT" --gradient-checkpointing --save-state-every "$STATE_EVERY" --no-progress

# Every test user, the stored candidates, both protocols (SASRec ranks only); users sharded over the processes.
evaluate() {  # evaluate TAG MODEL MODE
  local tag=$1 model=$2 mode=$3
  if [ -f "$OUT/.done-eval-$tag-$mode" ]; then return; fi
  "${LAUNCH[@]}" evaluate --model "$model" --data "$OUT/data" --mode "$mode" --llm-quantization "$LLM_QUANT" \
    --out "$OUT/results/$tag.$mode.json"
  touch "$OUT/.done-eval-$tag-$mode"
}
evaluate sasrec "$OUT/sasrec" rank
for mode in generate rank; do
  evaluate allmrec  "$OUT/allmrec" "$mode"
  evaluate tallrec  "$OUT/tallrec" "$mode"
  evaluate llm-only "llm:$LLM"     "$mode"
done
echo "results in $OUT/results (timings in $OUT/timings.txt)"
