#!/usr/bin/env bash
# The GPU check (issue 23), on a machine with a CUDA GPU:
#
#   bash scripts/device_check.sh [OUT_DIR] [extra benchmarks/device_timing.py args...]
#
# 1. pytest -m cuda (tests/cuda: the float64 oracles on CUDA for tiny float64 and bfloat16
#    models, results on the GPU, the model restored, SmolLM2 `fast` on CUDA == on the CPU).
#    scripts/test.sh deselects these tests: CI has no GPU.
# 2. benchmarks/device_timing.py --device cuda: full HETA, `fast` and leave-one-out occlusion on
#    SmolLM2 at 128 / 512 / 2,048 tokens, time and peak GPU memory, one subprocess per call;
#    OUT_DIR/device_timing.{json,md} (default OUT_DIR: benchmarks/device-cuda).
#
# Extra arguments go to the timing script, e.g. `--timeout 120` (seconds per call; a call past
# it is reported as timed out), `--lengths 128,512`, `--methods fast,occlusion`,
# `--hvp-memory-gb 40` (default here 40 GB: at 2,048 tokens one HVP needs more than the library's
# 4 GB default, which then refuses with a message). PYTHON selects the interpreter (default .venv/bin/python if present).
# Both steps run; the exit status is non-zero if either failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out=${1:-benchmarks/device-cuda}
[[ $# -gt 0 ]] && shift
if [[ -z ${PYTHON:-} ]]; then
    PYTHON=python
    [[ -x .venv/bin/python ]] && PYTHON=.venv/bin/python
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export HF_HUB_DISABLE_TELEMETRY=1 WANDB_MODE=disabled
# the checkout's heta_lens, whatever the interpreter has installed
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$out"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'

status=0
echo "==================== pytest -m cuda ===================="
"$PYTHON" -m pytest tests -m cuda -q -p no:cacheprovider 2>&1 | tee "$out/pytest-cuda.txt"
rc=${PIPESTATUS[0]}
[[ $rc -ne 0 ]] && { echo "[device_check] pytest -m cuda FAILED (exit $rc)"; status=1; }

echo "==================== device timing (cuda) ===================="
"$PYTHON" benchmarks/device_timing.py --device cuda --out "$out" --hvp-memory-gb 40 "$@" || {
    echo "[device_check] device timing FAILED"
    status=1
}
exit $status
