#!/usr/bin/env bash
# Build the API reference from the docstrings with pdoc; any warning fails the build.
#
#   bash scripts/build_docs.sh [PACKAGE]      # default heta_lens -> site/api/index.html
#
# Every public module of PACKAGE gets a page (pdoc follows a package's __all__ when it walks
# submodules, so modules hidden behind an __all__ are passed to it explicitly). Docstrings
# are read as Google style. pdoc reports problems (an annotation it cannot resolve, an
# `.. include::` it cannot read, a module that fails to import, ...) as Python warnings and
# still writes the pages; here each warning is printed and the build exits 1. Anything else
# written to stderr fails it too. Env: PYTHON (default .venv/bin/python), DOCS_OUT (default
# site/api; the folder is replaced).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

package=${1:-heta_lens}
out=${DOCS_OUT:-site/api}
python=${PYTHON:-.venv/bin/python}
stderr_log=$(mktemp)
trap 'rm -f "$stderr_log"' EXIT

rm -rf "$out"
status=0
"$python" - "$package" "$out" 2>"$stderr_log" <<'PY' || status=$?
import pkgutil
import sys
import warnings
from importlib import import_module
from pathlib import Path

import pdoc
import pdoc.extract
import pdoc.render

package, out = sys.argv[1], Path(sys.argv[2])
root = import_module(package)
names = [package] + sorted(
    info.name
    for info in pkgutil.walk_packages(root.__path__, f"{package}.")
    if not any(part.startswith("_") for part in info.name.split("."))
)
with warnings.catch_warnings(record=True) as caught:
    specs: list[str] = []
    covered: set[str] = set()
    for name in names:  # parents first: a module pdoc already reaches is not passed again
        if name not in covered:
            specs.append(name)
            covered.update(pdoc.extract.walk_specs([name]))
    pdoc.render.configure(docformat="google", footer_text=f"{package} API reference")
    pdoc.pdoc(*specs, output_directory=out)
for warning in caught:
    print(f"{warning.category.__name__}: {warning.message} ({warning.filename}:{warning.lineno})",
          file=sys.stderr)
pages = len(list(out.rglob("*.html")))
print(f"[build_docs] {pages} pages ({len(specs)} module specs) in {out}/")
sys.exit(1 if caught else 0)
PY

if [[ -s $stderr_log ]]; then
    cat "$stderr_log" >&2
    echo "[build_docs] FAILED: pdoc printed warnings or errors (above); fix the docstrings" >&2
    exit 1
fi
if [[ $status -ne 0 ]]; then
    echo "[build_docs] FAILED (exit $status)" >&2
    exit "$status"
fi
echo "[build_docs] open $out/index.html"
