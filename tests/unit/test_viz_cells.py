"""The shared colour scale and cell format of heta_lens.viz.cells, and that every view uses it."""

import math
import re

import pytest
import torch

import heta_lens as H
from heta_lens import viz
from heta_lens.demo import render_tokens
from heta_lens.viz import cells

RESULT = H.AttributionResult(
    tokens=torch.tensor([1, 5, 7, 3, 9, 11]),
    target=5,
    scores=torch.tensor([0.5, -1.0, math.nan, 2.0, 0.0], dtype=torch.float64),
    method="toy",
    signed=True,
)


@pytest.mark.parametrize(
    ("value", "scale", "expected"),
    [
        (0.0, 1.0, "rgb(255,255,255);color:#111"),
        (1.0, 1.0, "rgb(220,38,38);color:#fff"),
        (-5.0, 5.0, "rgb(37,99,235);color:#fff"),
        (3.0, 2.0, "rgb(220,38,38);color:#fff"),  # capped at 1
        (math.nan, 1.0, "rgb(255,255,255);color:#111"),
        (1.0, 0.0, "rgb(255,255,255);color:#111"),
    ],
)
def test_cell_style_scale(value, scale, expected):
    assert cells.cell_style(value, scale) == f"background:{expected}"
    assert cells.cell_style(value, scale, prop="background-color").endswith(expected)


def test_page_script_uses_the_same_scale():
    page = viz.to_html(RESULT)
    assert cells.heat_js() in page
    assert "[220, 38, 38] : [37, 99, 235]" in cells.heat_js()
    assert f"> {cells.DARK} ?" in page


def test_page_and_demo_colour_each_token_alike():
    page_styles = re.findall(
        r'<span class="tok" [^>]*style="background:([^"]*)"', viz.to_html(RESULT)
    )
    demo_styles = re.findall(r'style="background-color:([^"]*)"', render_tokens(RESULT))
    assert len(page_styles) == RESULT.target
    assert page_styles == demo_styles


def test_components_and_format():
    assert list(cells.components(RESULT)) == ["score"]
    assert cells.component(RESULT, "gate") is None
    assert cells.max_abs(RESULT.scores) == 2.0
    assert cells.normalise(RESULT.scores) == [0.25, -0.5, 0.0, 1.0, 0.0]
    assert (cells.fmt(1234.5678), cells.fmt(math.inf)) == ("1235", "n/a")
    with pytest.raises(ValueError, match="unknown component"):
        cells.check_components(["score", "nope"])
