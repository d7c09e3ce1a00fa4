"""Execute the tutorials and write their executed ``.ipynb`` twins, outputs kept small.

    .venv/bin/python scripts/run_tutorials.py [NAME ...]   # e.g. 01 or 01_quickstart

Each ``tutorials/NN_*.py`` (jupytext percent format, the file to edit) is converted with
jupytext, executed top to bottom with nbclient in ``tutorials/`` (so it sees the relative
paths a reader running it there sees), stripped by :func:`strip_outputs` and written next to
it as ``NN_*.ipynb``. ``tests/tutorials`` executes the ``.py`` files with the same functions
and checks that every ``.ipynb`` twin has the same cells as its source.

Stripping: per-cell timing and widget state are dropped, HTML outputs over
:data:`HTML_CAP` characters (circuitsvis's inlined JavaScript) become a one-line note, text
outputs are cut at :data:`TEXT_CAP` characters, progress bars are removed from stderr, and
images over :data:`PNG_CAP` bytes are an error (the notebooks plot at 72 dpi).
"""

import argparse
import base64
import re
import sys
import time
from pathlib import Path
from typing import Any

import jupytext
import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
HTML_CAP = 50_000
TEXT_CAP = 4_000
PNG_CAP = 60_000
KERNEL = "python3"
_PROGRESS = re.compile(r"\r|\d+%\|")
_DROPPED_MIME = ("application/javascript", "application/vnd.jupyter.widget-view+json")


def tutorial_sources() -> list[Path]:
    """The tutorial sources, in order (``tutorials/NN_*.py``)."""
    return sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))


def twin_path(source: Path) -> Path:
    """The executed notebook written next to a source."""
    return source.with_suffix(".ipynb")


def read_source(source: Path) -> Any:
    """The notebook a jupytext ``.py`` source describes (no outputs)."""
    return jupytext.read(source)


def execute(notebook: Any, *, cwd: Path, timeout: int = 600) -> Any:
    """Run every cell in a fresh ``python3`` kernel (this interpreter) with ``cwd`` as its
    working directory; a failing cell raises ``nbclient.exceptions.CellExecutionError``."""
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name=KERNEL,
        record_timing=False,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()
    return notebook


def _cap_text(text: str, cap: int) -> str:
    if len(text) <= cap:
        return text
    return text[:cap] + f"\n[... {len(text) - cap} more characters left out of the saved notebook]"


def _strip_data(data: dict[str, Any]) -> None:
    for mime in _DROPPED_MIME:
        data.pop(mime, None)
    page = data.get("text/html")
    if isinstance(page, list):
        page = "".join(page)
    if isinstance(page, str) and len(page) > HTML_CAP:
        del data["text/html"]
        data["text/plain"] = (
            f"[{len(page) / 1024:.0f} KiB HTML view (inlined JavaScript) left out of the saved "
            "notebook: run the cell to see it]"
        )
    plain = data.get("text/plain")
    if isinstance(plain, str):
        data["text/plain"] = _cap_text(plain, TEXT_CAP)
    png = data.get("image/png")
    if isinstance(png, str) and len(base64.b64decode(png)) > PNG_CAP:
        raise ValueError(f"a plot is {len(base64.b64decode(png))} bytes (cap {PNG_CAP})")


def _strip_output(output: Any) -> Any | None:
    if output.output_type == "stream":
        text = output.text
        if output.name == "stderr":
            lines = [line for line in text.splitlines() if not _PROGRESS.search(line)]
            text = "\n".join(lines) + ("\n" if lines else "")
        if not text.strip():
            return None
        output.text = _cap_text(text, TEXT_CAP)
    elif output.output_type in ("display_data", "execute_result"):
        _strip_data(output.data)
        output.metadata = {}
    return output


def strip_outputs(notebook: Any) -> Any:
    """Make an executed notebook small and stable (see the module docstring); in place."""
    notebook.metadata.pop("widgets", None)
    notebook.metadata["language_info"] = {"name": "python"}
    for index, cell in enumerate(notebook.cells):
        cell.id = f"cell-{index:02d}"
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            kept = (_strip_output(output) for output in cell.outputs)
            cell.outputs = [output for output in kept if output is not None]
    return notebook


def cell_sources(notebook: Any) -> list[tuple[str, str]]:
    """``(cell type, source)`` of every cell: what a source and its twin must agree on."""
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


def run_tutorial(source: Path, *, cwd: Path, timeout: int = 600) -> tuple[Any, float]:
    """Execute one source in ``cwd`` and strip it; returns the notebook and the seconds taken."""
    notebook = read_source(source)
    start = time.perf_counter()
    execute(notebook, cwd=cwd, timeout=timeout)
    return strip_outputs(notebook), time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="tutorials to run (prefix, e.g. 01); default all")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    sources = [
        s
        for s in tutorial_sources()
        if not args.names or any(s.stem.startswith(n) for n in args.names)
    ]
    if not sources:
        parser.error(f"no tutorial matches {args.names}")
    for source in sources:
        notebook, seconds = run_tutorial(source, cwd=TUTORIALS, timeout=args.timeout)
        target = twin_path(source)
        nbformat.write(notebook, target)
        size = target.stat().st_size / 1024
        print(f"{source.name}: executed in {seconds:.1f} s -> {target.name} ({size:.1f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
