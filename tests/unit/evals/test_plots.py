"""Figures of a finished run: which PNGs write_plots produces, and that they are PNGs."""

import math
from dataclasses import replace

import pytest
import torch

from heta_lens.evals.metrics import Interval
from heta_lens.evals.plots import error_bars, line_style
from heta_lens.evals.reports import figure_values, write_plots
from heta_lens.evals.runner import run_eval
from heta_lens.evals.summary import HEADERS, summarize
from heta_lens.registry import list_methods
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


def test_figures_show_the_soft_ln_ratios_with_the_table_numbers(tmp_path):
    model = tiny_bridge()
    settings = replace(BASE, metrics=("soft", "hard"))
    rows = run_eval(
        tiny_bridge,
        instances()[:2],
        methods=["heta", "heta@beta=0.0", "heta@beta=1.0"],
        settings=settings,
        out=tmp_path,
        model=model,
        progress=False,
    )
    values = figure_values(rows, instances()[:2], seed=settings.seed)
    table = {s.method: s.values for s in summarize(rows, seed=settings.seed)}
    for method in ("heta", "heta@beta=0.0", "heta@beta=1.0", "random"):
        headers = list(values[method])
        assert headers[:2] == [HEADERS["soft_ns"], HEADERS["soft_nc"]]
        for key in ("soft_ns", "soft_nc", "hard_nc", "hard_ns"):
            # repr: equal field by field, NaN bounds included (NaN != NaN under ==)
            assert repr(values[method][HEADERS[key]]) == repr(table[method][key])
    written = write_plots(model, rows, instances()[:2], settings=settings, out=tmp_path)
    # the sweep only: @beta variants are not ablations, so the family has one member here
    assert [p.name for p in written] == ["sweep.png"]


def test_error_bars_leave_out_unbounded_sides():
    finite = Interval(mean=1.0, low=0.5, high=2.0, n=3)
    open_above = Interval(mean=0.2, low=-0.3, high=math.inf, n=3)
    undefined = Interval(mean=-math.inf, low=-math.inf, high=math.inf, n=3)
    means, (below, above) = error_bars([finite, open_above, undefined])
    assert means[:2] == [1.0, 0.2] and math.isnan(means[2])
    assert below == pytest.approx([0.5, 0.5, 0.0])
    assert above == pytest.approx([1.0, 0.0, 0.0])


def test_line_styles_are_distinct_for_every_registered_method():
    n = len(list_methods()) + 1  # every method and the random baseline in one figure
    assert 16 < n <= 30
    styles = [line_style(k) for k in range(30)]
    assert len(set(styles)) == len(styles)
    assert line_style(0) == ("C0", "-", "o")
    assert line_style(10) == ("C0", "--", "s")
