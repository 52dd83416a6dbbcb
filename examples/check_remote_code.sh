#!/usr/bin/env bash
# Fresh-process check: an A-LLMRec checkpoint loads in a virtual environment WITHOUT allmrec installed,
# through AutoModel.from_pretrained(..., trust_remote_code=True), and reproduces allmrec's scores exactly.
#
#   examples/check_remote_code.sh CHECKPOINT [--data PREPARED_DIR] [--llm LLM_DIR] [--revision SHA]
#
# CHECKPOINT is a local folder (or a Hub repo id when HF_ENDPOINT/HF_HUB_OFFLINE=0 allow it).
# 1. reference scores with allmrec (this repository's .venv);
# 2. a new venv (python -m venv --without-pip) whose only packages are the main venv's site-packages, added
#    as a plain path in a .pth file: .pth files inside that folder are not executed, so allmrec's editable
#    install hook never runs and `import allmrec` fails there (checked);
# 3. the remote-code load + comparison in that venv, from a working directory outside the repository.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
MAIN_PY="${MAIN_PY:-$REPO/.venv/bin/python}"
[ $# -ge 1 ] || { echo "usage: $0 CHECKPOINT [--data DIR] [--llm DIR] [--revision SHA] [--users N]" >&2; exit 2; }
CKPT="$1"; shift
[ -e "$CKPT" ] && CKPT="$(cd "$CKPT" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
export TRANSFORMERS_OFFLINE="${TRANSFORMERS_OFFLINE:-$HF_HUB_OFFLINE}"
export HF_MODULES_CACHE="$WORK/modules" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

REF_ARGS=(); REMOTE_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --data|--users|--seed) REF_ARGS+=("$1" "$2"); shift 2 ;;
    --llm|--revision) REF_ARGS+=("$1" "$2"); REMOTE_ARGS+=("$1" "$2"); shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

"$MAIN_PY" "$REPO/examples/check_remote_code.py" --mode reference --checkpoint "$CKPT" --expected "$WORK/expected.json" ${REF_ARGS[@]+"${REF_ARGS[@]}"}

BASE_PY="$("$MAIN_PY" -c 'import sys; print(sys._base_executable)')"
SITE="$("$MAIN_PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
"$BASE_PY" -m venv --without-pip "$WORK/venv"
ISO_SITE="$("$WORK/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$SITE" > "$ISO_SITE/main-venv-packages.pth"
cp "$REPO/examples/check_remote_code.py" "$WORK/"
cd "$WORK"
unset PYTHONPATH  # nothing may bring the repository back onto sys.path
if "$WORK/venv/bin/python" -c 'import allmrec' 2>/dev/null; then
  echo "error: allmrec is importable in the isolated venv; the check would prove nothing" >&2; exit 1
fi
echo "isolated venv $WORK/venv: torch + transformers available, 'import allmrec' fails"
"$WORK/venv/bin/python" "$WORK/check_remote_code.py" --mode remote --checkpoint "$CKPT" --expected "$WORK/expected.json" ${REMOTE_ARGS[@]+"${REMOTE_ARGS[@]}"}
