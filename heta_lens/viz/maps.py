"""Heatmap views inside HETA: the gate by head (layer × head) and the curvature interactions.

Both are HTML fragments of the self-contained page (:func:`heta_lens.viz.to_html` with
``heads=`` / ``interactions=True``), coloured on the scale of :mod:`heta_lens.viz.cells`:

- :func:`heads_html`: for one context token i, the layer × head heatmap of
  ``gate_by_head[:, :, i]`` (each cell: the head's share of token i's gate, in %), a column of
  per-layer sums, and the ranked "heads carrying token i" table.
- :func:`interactions_html`: the ``[ctx, ctx]`` map X[i, j] (row i, probed token j); the
  colour scale is the largest off-diagonal value, so the diagonal (= S, usually larger) is
  capped at full colour and the cross-token terms stay visible.
"""

import html
from typing import Literal

import torch
from torch import Tensor

from heta_lens.result import AttributionResult, HetaResult
from heta_lens.viz.cells import cell_style, fmt, max_abs, token_strings, visible_token

HeadsChoice = Literal["top"] | int
"""Which token the head view shows: ``"top"`` (the best-scoring one) or a context position."""

CSS = """
.map{margin-top:10px}
.map h3{font-size:13px;font-weight:600;margin:0 0 4px}
.map p{font-size:12px;color:#555;margin:0 0 4px}
table.grid{border-collapse:collapse;font-size:11px}
table.grid td{border:1px solid #fff;text-align:center;min-width:30px;padding:1px 3px}
table.grid.square td{min-width:14px;height:14px;padding:0}
table.grid th{font-weight:400;color:#555;padding:0 4px}
"""


def _kept(result: AttributionResult, name: str, how: str) -> tuple[HetaResult, Tensor]:
    """``result`` as a :class:`HetaResult` and its ``name`` output (float64, CPU)."""
    value = getattr(result, name, None)
    if not isinstance(result, HetaResult) or not isinstance(value, Tensor):
        raise ValueError(f"result ({result.method}) has no {name}: attribute with {how}")
    return result, value.detach().to("cpu", torch.float64)


def head_position(result: AttributionResult, choice: HeadsChoice) -> int:
    """The context position a head view shows: the top-scoring token for ``"top"``.

    Raises:
        ValueError: A position outside the context.
    """
    if choice == "top":
        return result.top(1)[0][0]
    if not 0 <= choice < result.target:
        last = result.target - 1
        raise ValueError(f"head view position {choice} is outside the context 0..{last}")
    return choice


def heads_html(result: AttributionResult, position: HeadsChoice, *, top_k: int = 10) -> str:
    """The layer × head heatmap of ``position``'s gate and its ranked heads table.

    Raises:
        ValueError: The result has no ``gate_by_head``, or ``position`` is outside the context.
    """
    heta, by_head = _kept(result, "gate_by_head", "HetaConfig(gate_by_head=True)")
    position = head_position(heta, position)
    column = by_head[:, :, position]
    total = float(heta.gate[position])
    share = column / total * 100 if total > 0 else column * 0
    layers = column.sum(dim=1)
    scale, layer_scale = max_abs(column), max_abs(layers)
    n_layers, n_heads = column.shape
    head_row = "".join(f"<th>h{h}</th>" for h in range(n_heads))
    rows = []
    for layer in range(n_layers):
        cells = "".join(
            _cell(float(share[layer, h]), float(column[layer, h]), scale, f"L{layer} h{h}")
            for h in range(n_heads)
        )
        layer_share = float(layers[layer]) / total * 100 if total > 0 else 0.0
        cells += _cell(layer_share, float(layers[layer]), layer_scale, f"layer {layer}")
        rows.append(f"<tr><th>L{layer}</th>{cells}</tr>")
    token = html.escape(visible_token(token_strings(heta)[position]))
    return (
        f'<div class="map heads"><h3>Gate by head · token <span class="t">{token}</span> '
        f"(pos {position}) · gate = {fmt(total)}</h3>"
        "<p>Cell: the head's share of this token's gate, in %; Σ: the layer's share.</p>"
        f'<table class="grid"><thead><tr><th></th>{head_row}<th>Σ</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>{_ranked(heta, position, top_k)}</div>"
    )


def _cell(percent: float, mass: float, scale: float, label: str) -> str:
    title = html.escape(f"{label}: mass {fmt(mass)} ({percent:.1f}% of the token's gate)")
    return f'<td style="{cell_style(mass, scale)}" title="{title}">{percent:.1f}</td>'


def _ranked(result: HetaResult, position: int, top_k: int) -> str:
    total = float(result.gate[position])
    rows = "".join(
        f"<tr><td>{rank}</td><td>{layer}</td><td>{head}</td><td>{fmt(mass)}</td>"
        f"<td>{mass / total * 100 if total > 0 else 0.0:.1f}</td></tr>"
        for rank, (layer, head, mass) in enumerate(result.top_heads(position, top_k), start=1)
    )
    return (
        "<table><thead><tr><th>#</th><th>layer</th><th>head</th><th>mass</th>"
        f"<th>% of gate</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def interactions_html(result: AttributionResult) -> str:
    """The ``[ctx, ctx]`` curvature interaction heatmap of a result.

    Raises:
        ValueError: The result has no ``interactions``.
    """
    heta, values = _kept(result, "interactions", "Exact(interactions=True)")
    n = values.shape[0]
    scale = interaction_scale(values)
    strings = [visible_token(s) for s in token_strings(heta)[:n]]
    head = "".join(f'<th title="{html.escape(s)}">{j}</th>' for j, s in enumerate(strings))
    rows = []
    for i in range(n):
        cells = "".join(
            f'<td style="{cell_style(float(values[i, j]), scale)}" title="'
            f"{html.escape(f'row {i} {strings[i]!r}, probe {j} {strings[j]!r}: ')}"
            f'{fmt(float(values[i, j]))}"></td>'
            for j in range(n)
        )
        rows.append(f'<tr><th class="t">{i} {html.escape(strings[i])}</th>{cells}</tr>')
    return (
        '<div class="map interactions"><h3>Curvature interactions</h3>'
        "<p>Row i, column j: (1/m) Σ<sub>k</sub> ‖Π<sub>i</sub> H Π<sub>j</sub> r<sub>k</sub>‖₁ "
        f"(diagonal = curvature S); colour scale: largest off-diagonal value, {fmt(scale)}.</p>"
        f'<table class="grid square"><thead><tr><th></th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def interaction_scale(values: Tensor) -> float:
    """The colour scale of an interaction map: its largest off-diagonal magnitude (the
    largest magnitude when there is none)."""
    n = values.shape[0]
    if n < 2:
        return max_abs(values)
    off = values.masked_fill(torch.eye(n, dtype=torch.bool), 0.0)
    return max_abs(off) or max_abs(values)
