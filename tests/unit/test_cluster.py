"""The Ray runner's shell without Ray: the core never imports it, a missing Ray is a clear
error naming the extra, bad runner flags are refused before anything is loaded."""

import subprocess
import sys
from pathlib import Path

import pytest

from heta_lens.cli import main
from heta_lens.cluster import RAY_EXTRA, RayMissingError, RayOptions, import_ray
from heta_lens.evals import SuiteSettings, run_suite

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_package_and_the_evals_does_not_import_ray():
    code = (
        "import sys, heta_lens, heta_lens.evals, heta_lens.cli, heta_lens.evals.ray_runner, "
        "heta_lens.batch_ray; print('ray' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


@pytest.fixture
def no_ray(monkeypatch):
    """As if Ray were not installed (``import ray`` raises ImportError)."""
    monkeypatch.setitem(sys.modules, "ray", None)


def test_a_missing_ray_names_the_extra(no_ray):  # noqa: ARG001
    with pytest.raises(RayMissingError, match=r"pip install 'heta-lens\[ray\]'"):
        import_ray()
    with pytest.raises(ImportError, match="heta-lens"):  # an ImportError, for library callers
        run_suite(SuiteSettings(dataset="curated", runner="ray", model="no-such-model"))


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "curated", "--runner", "ray", "--model", "no-such-model"],
        ["attribute", "--input", "x.jsonl", "--out", "y.jsonl", "--runner", "ray"],
    ],
    ids=["eval", "attribute"],
)
def test_the_cli_says_to_install_the_extra(no_ray, argv, capsys):  # noqa: ARG001
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == f"heta-lens: error: {RAY_EXTRA}"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["attribute", "text", "--runner", "ray"], "--runner ray runs many prompts"),
        (["attribute", "text", "--ray-address", "h:1"], "--workers go with --runner ray"),
        (["attribute", "text", "--workers", "2"], "--workers go with --runner ray"),
        (["eval", "curated", "--ray-address", "h:1"], "--ray-address goes with --runner ray"),
        (["eval", "curated", "--runner", "spark"], "invalid choice"),
    ],
)
def test_bad_runner_flags_are_refused(argv, message, capsys):
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own refusal
        code = stop.code
    assert code == 2
    assert message in capsys.readouterr().err


def test_ray_options_are_validated():
    with pytest.raises(ValueError, match="workers and cpus must be >= 1"):
        RayOptions(workers=0)
    with pytest.raises(ValueError, match="max_item_retries"):
        RayOptions(max_item_retries=-1)
    with pytest.raises(ValueError, match="unknown runner 'spark'"):
        SuiteSettings(dataset="curated", runner="spark")
