"""Figures of a finished run: which PNGs write_plots produces, and that they are PNGs."""

from dataclasses import replace

import pytest
import torch

from heta_lens.evals.reports import write_plots
from heta_lens.evals.runner import run_eval
from heta_lens.testing import tiny_bridge
from tests.unit.evals.test_causal_robustness_rows import BASE
from tests.unit.evals.test_runner import instances

pytestmark = pytest.mark.bridge

PNG = b"\x89PNG\r\n\x1a\n"


def test_write_plots_makes_every_figure_the_run_supports(tmp_path):
    model = tiny_bridge()
    settings = replace(BASE, metrics=("hard", "aopc", "causal"))
    methods = ["heta", "heta_kl_only", "heta@beta=0.0", "heta@beta=1.0", "occlusion"]
    rows = run_eval(
        tiny_bridge,
        instances()[:2],
        methods=methods,
        settings=settings,
        out=tmp_path,
        model=model,
        progress=False,
    )
    written = write_plots(model, rows, instances()[:2], settings=settings, out=tmp_path, trace=True)
    names = sorted(p.name for p in written)
    assert names == ["ablations.png", "deletion.png", "sweep.png", "trace.json", "trace.png"]
    for path in written:
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == PNG and path.stat().st_size > 2000


def test_no_aopc_no_family_no_trace_means_no_figures(tmp_path):
    model = tiny_bridge()
    settings = replace(BASE, metrics=("hard",))
    rows = run_eval(
        tiny_bridge,
        instances()[:1],
        methods=["occlusion"],
        settings=settings,
        out=tmp_path,
        model=model,
        progress=False,
    )
    assert write_plots(model, rows, instances()[:1], settings=settings, out=tmp_path) == []
    assert torch.is_grad_enabled()
