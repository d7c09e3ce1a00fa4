#!/usr/bin/env bash
# Regenerate docs/img/demo.png (the README's picture of `heta-lens demo`) by running the
# browser test, which starts the demo on 127.0.0.1, attributes "The capital of France is"
# with preset fast in headless Chromium and saves a full-page screenshot.
#
#   bash scripts/demo_screenshot.sh [OUT.png]     # default docs/img/demo.png
#
# Needs .venv (make install) and /usr/bin/chromium; about a minute on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/img/demo.png}
export HETA_DEMO_SCREENSHOT="$out" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/python -m pytest tests/e2e/test_demo_browser.py -m e2e -q -p no:cacheprovider
echo "[demo_screenshot] wrote $out"
