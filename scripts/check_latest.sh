#!/usr/bin/env bash
# Drift check: the newest releases of the libraries whose internals heta_lens leans on
# (transformers, transformer-lens), unpinned, in throwaway venvs, against the oracle unit
# tests (tiny float64 models, explicit reruns / Hessians / path enumeration; a few minutes).
# Run it before moving a lock or a bound (CONTRIBUTING.md, "Moving a pin").
#
#   bash scripts/check_latest.sh          # both legs: newest transformer-lens, newest 3.x
#   bash scripts/check_latest.sh tl4      # one leg
#
# torch stays at the locked 2.13.0 (the newest CPU wheel this machine has; newer torch pulls
# CUDA). Every other dependency resolves to its newest release, ignoring pyproject's bounds.
# If the newest transformers does not resolve (e.g. a dependency the registry does not serve),
# the script says so, then installs it with --no-deps over the newest resolvable set and tests
# that too, marked FORCED. Exit status: non-zero if any leg's tests failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/deps.sh

ORACLE_TESTS=(
    tests/unit/test_prefix_kl.py tests/unit/test_fastpath.py tests/unit/test_information.py
    tests/unit/test_gate.py tests/unit/test_curvature.py tests/unit/test_hvp.py
    tests/unit/test_attribute.py tests/unit/test_backends_agree.py
    tests/unit/test_estimators.py tests/unit/test_windows.py tests/unit/test_model_state.py
    tests/unit/methods/test_baselines_occlusion.py tests/unit/methods/test_baselines_gradients.py
)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

newest() {  # newest version of $1 that pip's index lists for this Python
    python3 -m pip index versions "$1" 2>/dev/null | sed -n -E 's/^Available versions: ([^,]+).*/\1/p'
}

# Runtime and test dependencies of heta_lens, names only (bounds dropped on purpose).
unbounded_deps() {
    python3 - <<'PY'
import re
import tomllib

project = tomllib.load(open("pyproject.toml", "rb"))["project"]
wanted = project["dependencies"] + [
    d for d in project["optional-dependencies"]["dev"] if not d.startswith(("playwright", "pyright", "ruff"))
]
names = {re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0] for d in wanted}
names -= {"torch", "transformer-lens", "transformers"}
print(" ".join(sorted(names)))
PY
}

check_leg() {
    local leg=$1 tl_spec venv tf_new forced="" marks
    case $leg in
        tl4) tl_spec="transformer-lens" marks="not hooked" ;; # TL 4 has no HookedTransformer
        tl3) tl_spec="transformer-lens<4" marks="" ;;
        *) echo "usage: bash scripts/check_latest.sh [tl3] [tl4]" >&2; return 2 ;;
    esac
    venv="${TMPDIR:-/tmp}/heta-latest-$leg"
    tf_new=$(newest transformers)
    echo "==================== latest: $leg ($tl_spec, transformers $tf_new) ===================="
    rm -rf "$venv"
    python3 -m venv "$venv"
    pipq "$venv" install "$TORCH_PIN"
    # shellcheck disable=SC2046
    if ! pipq "$venv" install "$TORCH_PIN" "$tl_spec" "transformers==$tf_new" $(unbounded_deps); then
        echo "[latest] transformers $tf_new does not resolve with $tl_spec (pip's error above);"
        echo "[latest] installing the newest resolvable set, then transformers $tf_new --no-deps"
        # shellcheck disable=SC2046
        pipq "$venv" install "$TORCH_PIN" "$tl_spec" transformers $(unbounded_deps)
        pipq "$venv" install --no-deps "transformers==$tf_new"
        "$venv/bin/python" -m pip check | grep -E "^transformers " || true
        forced=" FORCED (--no-deps)"
    fi
    pipq "$venv" install --no-deps -e .
    echo "[latest] $leg resolved:$forced"
    "$venv/bin/python" -m pip list 2>/dev/null |
        grep -i -E '^(torch|transformers|transformer-lens|huggingface[-_]hub|tokenizers|accelerate|jaxtyping|beartype|captum) '
    local rc=0
    "$venv/bin/python" -m pytest "${ORACLE_TESTS[@]}" -m "$marks" -n 2 -q -p no:cacheprovider \
        --tb=short || rc=$?
    echo "[latest] $leg: pytest exit $rc$forced"
    return "$rc"
}

legs=("$@")
[[ ${#legs[@]} -gt 0 ]] || legs=(tl4 tl3)
failed=()
for leg in "${legs[@]}"; do
    check_leg "$leg" || failed+=("$leg")
done
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "[latest] FAILED legs: ${failed[*]}"
    exit 1
fi
echo "[latest] every leg passed its oracle tests"
