"""The tutorials run top to bottom on the embedded SmolLM2, and their notebooks match them.

Each ``tutorials/NN_*.py`` is executed with nbclient exactly as ``scripts/run_tutorials.py``
executes it, in a temporary copy of the repository layout (``tutorials/`` as the working
directory, plus the ``benchmarks/`` and ``evals/runs/`` files the tutorials read), so a
tutorial that needs anything else, or writes outside its folder, fails here. Marked
``tutorial`` (run once, in the transformer-lens 3.9 stage of ``scripts/test.sh``).
"""

import importlib.util
import re
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import nbformat
import pytest

from tests.conftest import isolated_env

ROOT = Path(__file__).resolve().parents[2]
READS = (Path("benchmarks/RESULTS.md"), Path("evals/runs/curated-smollm2-135m"))
"""Repository files the tutorials read (relative to the repository root)."""
MAX_NOTEBOOK_BYTES = 200_000


def _load_runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "run_tutorials", ROOT / "scripts" / "run_tutorials.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runner = _load_runner()
SOURCES = {source.stem: source for source in runner.tutorial_sources()}


def _execute(name: str, tmp_path: Path) -> tuple[Any, Path]:
    """Run one tutorial in a copy of the repository layout; returns the notebook and its cwd."""
    cwd = tmp_path / "tutorials"
    cwd.mkdir()
    shutil.copy(SOURCES[name], cwd)
    for relative in READS:
        target = tmp_path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / relative).is_dir():
            shutil.copytree(ROOT / relative, target)
        else:
            shutil.copy(ROOT / relative, target)
    notebook, _ = runner.run_tutorial(cwd / SOURCES[name].name, cwd=cwd)
    return notebook, cwd


def _outputs(notebook: Any) -> list[Any]:
    return [
        output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    ]


def _text(notebook: Any) -> str:
    """Everything the notebook printed or displayed as text."""
    parts = []
    for output in _outputs(notebook):
        if output.output_type == "stream":
            parts.append(output.text)
        elif "data" in output:
            parts.append(output.data.get("text/plain", ""))
    return "\n".join(parts)


def _check_clean(notebook: Any) -> None:
    """No warnings or errors printed, and the stripped notebook stays small."""
    stderr = [o.text for o in _outputs(notebook) if getattr(o, "name", None) == "stderr"]
    assert stderr == [], f"the tutorial printed to stderr: {stderr}"
    assert len(nbformat.writes(notebook).encode()) < MAX_NOTEBOOK_BYTES


def _pngs(notebook: Any) -> int:
    return sum("image/png" in output.get("data", {}) for output in _outputs(notebook))


def test_the_four_tutorials_exist():
    assert [name[:3] for name in SOURCES] == ["01_", "02_", "03_", "04_"]


@pytest.mark.tutorial
@pytest.mark.parametrize("name", list(SOURCES))
def test_notebook_twin_matches_its_source(name: str):
    """The committed .ipynb has the source's cells, was executed in order and ran cleanly."""
    source = SOURCES[name]
    twin = runner.twin_path(source)
    assert twin.is_file(), f"{twin.name} is missing: run scripts/run_tutorials.py {name[:2]}"
    notebook = nbformat.read(twin, as_version=4)
    assert runner.cell_sources(notebook) == runner.cell_sources(runner.read_source(source)), (
        f"{twin.name} is out of date: run scripts/run_tutorials.py {name[:2]}"
    )
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    assert not any(o.output_type == "error" for o in _outputs(notebook))
    _check_clean(notebook)
    assert twin.stat().st_size < MAX_NOTEBOOK_BYTES


@pytest.mark.tutorial
@pytest.mark.slow
def test_quickstart_runs_and_exports_the_page(tmp_path: Path):
    from heta_lens import viz

    notebook, cwd = _execute("01_quickstart", tmp_path)
    text = _text(notebook)
    assert "gate sums to 1: 1.000000" in text
    assert "score == gate_term * (beta*S' + gamma*I'): True" in text
    assert "same gate as in the result: True" in text
    assert "round trip exact: True" in text
    assert "left out of the saved notebook" in text  # the circuitsvis view was displayed
    page = (cwd / "out" / "quickstart.html").read_text(encoding="utf-8")
    assert "https://" not in page and "http://" not in page  # renders offline
    results = viz.results_from_html(page)
    assert [r.token_strings[r.target] for r in results if r.token_strings] == [" Paris", "."]
    assert all(token in page for token in ("capital", "France", "Paris"))
    _check_clean(notebook)


@pytest.mark.tutorial
@pytest.mark.slow
def test_circuit_analysis_runs(tmp_path: Path):
    from heta_lens import HetaResult, viz

    notebook, cwd = _execute("02_circuit_analysis", tmp_path)
    text = _text(notebook)
    positive = re.search(r"logit difference > 0 on (\d+) of (\d+) prompts", text)
    assert positive is not None and 2 * int(positive.group(1)) > int(positive.group(2))
    assert "patching: 270 heads" in text
    assert "by hand == transformer_lens.patching: True" in text
    assert "gate_by_head sums to gate: True" in text
    assert "same gate as for the token target ' Mary': True" in text
    assert "diagonal == curvature: True" in text
    rhos = re.findall(r"^ *(?:S2 token|names \(IO, S1, S2\)|all but BOS) +(-?[\d.]+)", text, re.M)
    assert len(rhos) == 3 and all(-1 <= float(rho) <= 1 for rho in rhos)
    page = (cwd / "out" / "ioi.html").read_text(encoding="utf-8")
    assert "Gate by head" in page and "Curvature interactions" in page
    [result] = viz.results_from_html(page)
    assert isinstance(result, HetaResult) and result.target_kind == "contrast"
    assert result.gate_by_head is not None and result.interactions is not None
    assert _pngs(notebook) == 2
    _check_clean(notebook)


@pytest.mark.tutorial
@pytest.mark.slow
def test_evaluating_attributions_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Also: from the clone alone (vendored data, empty caches under a new HOME)."""
    env = isolated_env(tmp_path / "home")
    for name in ("HETA_LENS_DATA", "HETA_LENS_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    notebook, cwd = _execute("03_evaluating_attributions", tmp_path)
    text = _text(notebook)
    assert "kept 2" in text
    for method in ("heta", "occlusion", "input_x_gradient", "attention_rollout", "random"):
        assert method in text
    assert re.search(r"\d+ complete instances", text)
    assert (cwd / "out" / "curated_short.jsonl").is_file()
    assert _pngs(notebook) == 2
    assert (tmp_path / "home" / ".cache" / "heta_lens" / "evals").is_dir()
    _check_clean(notebook)


@pytest.mark.tutorial
@pytest.mark.slow
def test_faster_longer_runs(tmp_path: Path):
    notebook, _ = _execute("04_faster_longer", tmp_path)
    text = _text(notebook)
    assert "top 3 tokens per preset" in text
    assert "ratio to occlusion" in text  # the table read from benchmarks/RESULTS.md
    assert re.search(r"prefix view: +[\d.]+ s", text)
    assert re.search(r"window view: +[\d.]+ s", text)
    _check_clean(notebook)
