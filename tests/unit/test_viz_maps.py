"""The gate-by-head and curvature-interaction views: page sections, terminal table, circuitsvis."""

import html
import json
import re

import pytest
import torch

import heta_lens as H
from heta_lens import viz
from heta_lens.testing import tiny_bridge
from heta_lens.viz.cells import cell_style, fmt
from tests.unit.test_viz import _assert_self_contained

pytestmark = pytest.mark.bridge
TOKENS = torch.tensor([1, 5, 7, 3, 9, 11])


@pytest.fixture(scope="module")
def kept() -> H.HetaResult:
    config = H.HetaConfig(gate_by_head=True, curvature=H.Exact(n_probes=2, interactions=True))
    return H.attribute(tiny_bridge(), TOKENS, config=config)


@pytest.fixture(scope="module")
def plain() -> H.HetaResult:
    return H.attribute(tiny_bridge(), TOKENS, config=H.HetaConfig.flat(n_probes=1))


def _grid(page: str, kind: str) -> str:
    match = re.search(rf'<div class="map {kind}">(.*?)</div>', page, re.S)
    assert match is not None
    return match.group(1)


def test_head_grid_cells_are_each_heads_share_of_the_tokens_gate(kept):
    assert kept.gate_by_head is not None
    position = 3
    grid = _grid(viz.to_html(kept, heads=position), "heads")
    column = kept.gate_by_head[:, :, position]
    total = float(kept.gate[position])
    n_layers, n_heads = column.shape
    cells = re.findall(r'<td style="([^"]*)" title="([^"]*)">([\d.]+)</td>', grid)
    assert len(cells) == n_layers * (n_heads + 1)  # every head, then the layer's Σ
    scale = float(column.max())
    for layer in range(n_layers):
        row = cells[layer * (n_heads + 1) : (layer + 1) * (n_heads + 1)]
        for head, (style, title, text) in enumerate(row[:-1]):
            mass = float(column[layer, head])
            assert text == f"{mass / total * 100:.1f}"
            assert style == cell_style(mass, scale)
            assert html.unescape(title).startswith(f"L{layer} h{head}: mass {fmt(mass)}")
        layer_mass = float(column[layer].sum())
        assert row[-1][2] == f"{layer_mass / total * 100:.1f}"
    ranked = re.findall(r"<tr><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td><td>([^<]*)</td>", grid)
    expected = kept.top_heads(position, 10)
    assert [(int(layer), int(head)) for _, layer, head, _ in ranked] == [
        (layer, head) for layer, head, _ in expected
    ]
    assert f"(pos {position}) · gate = {fmt(total)}" in grid


def test_heads_top_picks_the_best_scoring_token(kept):
    top = kept.top(1)[0][0]
    assert f"(pos {top}) ·" in _grid(viz.to_html(kept, heads="top"), "heads")


def test_interaction_grid_is_the_map_on_the_off_diagonal_scale(kept):
    assert kept.interactions is not None
    grid = _grid(viz.to_html(kept, interactions=True), "interactions")
    values = kept.interactions
    n = values.shape[0]
    cells = re.findall(r'<td style="([^"]*)" title="([^"]*)"></td>', grid)
    assert len(cells) == n * n
    off = values.clone().fill_diagonal_(0.0)
    scale = float(off.max())
    assert f"largest off-diagonal value, {fmt(scale)}" in grid
    for k, (style, title) in enumerate(cells):
        i, j = divmod(k, n)
        assert style == cell_style(float(values[i, j]), scale)
        assert html.unescape(title).startswith(f"row {i} ")
        assert html.unescape(title).endswith(f": {fmt(float(values[i, j]))}")


def test_page_with_both_views_stays_self_contained_and_round_trips(kept):
    page = viz.to_html([kept, kept], heads="top", interactions=True)
    _assert_self_contained(page)
    assert page.count('<div class="map heads">') == 2
    assert page.count('<div class="map interactions">') == 2
    (back, _) = viz.results_from_html(page)
    assert isinstance(back, H.HetaResult)
    assert back.gate_by_head is not None and back.interactions is not None
    assert torch.equal(back.gate_by_head, kept.gate_by_head)
    assert torch.equal(back.interactions, kept.interactions)
    assert "map heads" not in viz.to_html(kept)  # views only on request


def test_views_refuse_results_without_their_output(plain, kept):
    with pytest.raises(ValueError, match=r"no gate_by_head: .*gate_by_head=True"):
        viz.to_html(plain, heads="top")
    with pytest.raises(ValueError, match=r"no interactions: .*interactions=True"):
        viz.to_html(plain, interactions=True)
    with pytest.raises(ValueError, match="outside the context"):
        viz.to_html(kept, heads=5)
    with pytest.raises(ValueError, match="no gate_by_head"):
        viz.format_heads(plain, position=1)
    with pytest.raises(ValueError, match="no interactions"):
        viz.interaction_map(plain)


def test_format_heads_ranks_the_heads_of_one_token(kept):
    assert kept.gate_by_head is not None
    lines = viz.format_heads(kept, position=2, top=5).splitlines()
    total = float(kept.gate[2])
    assert lines[0].startswith(f"heads carrying [2] 'w7'  gate={total:.4g}  by layer: L0=")
    layers = kept.gate_by_head[:, :, 2].sum(1)
    assert f"L1={float(layers[1]) / total * 100:.1f}%" in lines[0]
    rows = [line.split() for line in lines[2:]]
    assert [(int(r[1]), int(r[2])) for r in rows] == [
        (layer, head) for layer, head, _ in kept.top_heads(2, 5)
    ]
    for row, (_, _, mass) in zip(rows, kept.top_heads(2, 5), strict=True):
        assert row[4] == f"{mass / total * 100:.1f}%"


def test_circuitsvis_attention_pattern_shows_the_map(kept):
    assert kept.interactions is not None
    rendered = viz.interaction_map(kept)
    src = rendered.cdn_src
    start = src.index("{", src.index("AttentionPattern,"))
    props, _ = json.JSONDecoder().raw_decode(src, start)
    assert props["tokens"] == ["w1", "w5", "w7", "w3", "w9"]
    torch.testing.assert_close(
        torch.tensor(props["attention"], dtype=torch.float64), kept.interactions, rtol=0, atol=0
    )
    off = kept.interactions.clone().fill_diagonal_(0.0)
    assert props["maxValue"] == float(off.max()) and props["maskUpperTri"] is False
