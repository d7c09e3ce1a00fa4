#!/usr/bin/env bash
# The single test command (CI runs exactly this):
#
#   bash scripts/test.sh [extra pytest args...]
#
# 1. install/update .venv (transformer-lens 3.9) and .venv-tl4 (transformer-lens 4.3)
# 2. in .venv: ruff check, ruff format --check, pyright, full pytest suite (incl. slow and gemma;
#    not cuda)
# 3. in .venv-tl4: pytest -m "not hooked and not tutorial and not e2e and not cuda" (TL 4 has
#    no HookedTransformer; tutorials and the browser test run once, in step 2)
#
# Both stages run the `ray` tests (a two-node Ray cluster on this machine, about a minute):
# `--dist loadgroup` keeps them on one xdist worker, which starts the cluster once.
#
# Both stages deselect the `cuda` tests (tests/cuda): CI machines have no GPU, and a CUDA test
# must fail, not skip, where it cannot run. scripts/device_check.sh runs them on a GPU machine.
#
# HETA_TEST_FAST=1 deselects the slow acceptance tests (local use only; CI never sets it).
# Extra arguments go to both pytest runs. Every stage runs; the exit status is non-zero
# if any failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

banner() {
    printf '\n==================== %s ====================\n' "$*"
}

banner "install: .venv (TL 3.9) and .venv-tl4 (TL 4.3)"
bash scripts/install.sh tl3 tl4

# Tests never touch the network: fail fast on any hub call instead of hanging.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export HF_HUB_DISABLE_TELEMETRY=1 WANDB_MODE=disabled
# Two xdist workers on two cores: one BLAS/OpenMP thread each.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"

failed=()

run_stage() {
    local name=$1
    shift
    banner "$name"
    local rc=0
    "$@" || rc=$?
    if [[ $rc -ne 0 ]]; then
        echo "[test.sh] stage '$name' FAILED (exit $rc)"
        failed+=("$name")
    fi
}

run_pytest() {
    local rc=0
    "$@" || rc=$?
    if [[ $rc -eq 5 ]]; then
        echo "[test.sh] pytest collected no tests (exit 5); there must always be tests"
    fi
    return "$rc"
}

# Tutorials and the browser test exercise the same code on both majors; they run once (TL 3.9).
# `not cuda` in both stages: no GPU in CI (see the header; scripts/device_check.sh runs them).
tl3_marks=(-m "not cuda")
tl4_marks=(-m "not hooked and not tutorial and not e2e and not cuda")
if [[ ${HETA_TEST_FAST:-0} == 1 ]]; then
    echo "[test.sh] HETA_TEST_FAST=1: deselecting slow acceptance tests"
    tl3_marks=(-m "not slow and not cuda")
    tl4_marks=(-m "not hooked and not slow and not tutorial and not e2e and not cuda")
fi

run_stage "ruff check" .venv/bin/ruff check heta_lens tests scripts tutorials
run_stage "ruff format --check" .venv/bin/ruff format --check heta_lens tests scripts tutorials
run_stage "pyright" .venv/bin/pyright
run_stage "docs: API reference (pdoc, warnings are errors)" bash scripts/build_docs.sh
run_stage "pytest: transformer-lens 3.9 (.venv), full suite" \
    run_pytest .venv/bin/python -m pytest tests -n 2 --dist loadgroup "${tl3_marks[@]}" "$@"
run_stage "pytest: transformer-lens 4.3 (.venv-tl4), not hooked" \
    run_pytest .venv-tl4/bin/python -m pytest tests -n 2 --dist loadgroup "${tl4_marks[@]}" "$@"

banner "summary"
if [[ ${#failed[@]} -gt 0 ]]; then
    printf '[test.sh] FAILED: %s\n' "${failed[@]}"
    exit 1
fi
echo "[test.sh] all stages passed"
