"""A self-contained HTML page of attributions: it renders offline (inline CSS and JS only).

:func:`to_html` / :func:`save_html` build the page: a component switcher, the context tokens
coloured by the selected component (the scale of :mod:`heta_lens.viz.cells`), hover tooltips
with every value, a top-k table, and the results embedded as JSON
(:func:`results_from_html` reads them back).
"""

import html
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from heta_lens._typing import typechecked
from heta_lens.aggregate import AggregatedResult
from heta_lens.result import AttributionResult, from_dict
from heta_lens.viz.cells import (
    DARK,
    DEFAULT_COMPONENTS,
    cell_style,
    check_components,
    components,
    fmt,
    heat_js,
    normalise,
    span,
    target_cell,
    target_heading,
    token_strings,
    tooltip,
    visible_token,
)
from heta_lens.viz.groups import group_components, group_view
from heta_lens.viz.maps import CSS as MAPS_CSS
from heta_lens.viz.maps import HeadsChoice, heads_html, interactions_html
from heta_lens.viz.notebook import Results, as_list
from heta_lens.words import LEVELS

_DATA_ID = "heta-lens-data"


def _token_spans(result: AttributionResult, comps: dict[str, Tensor]) -> str:
    norms = {name: normalise(value) for name, value in comps.items()}
    first = next(iter(norms))
    strings = token_strings(result)
    spans = []
    for pos in range(result.target):
        data = [(f"data-{k}", f"{n[pos]:.4f}") for k, n in norms.items()]
        attrs = [("title", tooltip(f"pos {pos}", comps, pos)), *data]
        attrs.append(("style", cell_style(norms[first][pos])))
        spans.append(span("tok", visible_token(strings[pos]), attrs))
    return "".join(spans) + _target_span(result)


def _target_span(result: AttributionResult) -> str:
    text, tip = target_cell(result)
    return span("tok target", text, [("title", tip)])


def _top_table(result: AttributionResult, comps: dict[str, Tensor], top_k: int) -> str:
    norms = {name: normalise(value) for name, value in comps.items()}
    head = "".join(f"<th>{html.escape(name)}</th>" for name in comps)
    rows = []
    for rank, (pos, string, _) in enumerate(result.top(top_k), start=1):
        cells = "".join(
            f'<td style="{cell_style(norms[k][pos])}">{fmt(float(v[pos]))}</td>'
            for k, v in comps.items()
        )
        token = html.escape(visible_token(string))
        rows.append(f'<tr><td>{rank}</td><td>{pos}</td><td class="t">{token}</td>{cells}</tr>')
    return (
        f'<table><thead><tr><th>#</th><th>pos</th><th class="t">token</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _section(
    result: AttributionResult,
    names: Sequence[str],
    top_k: int,
    grouped: AggregatedResult | None = None,
    heads: HeadsChoice | None = None,
    interactions: bool = False,
) -> str:
    comps = components(result, names)
    first = next(iter(comps))
    gmax = {} if grouped is None else group_components(grouped, list(comps))
    buttons = "".join(
        f'<button type="button" data-comp="{k}" data-max="{fmt(float(v.abs().max()))}"'
        + (f' data-gmax="{fmt(float(gmax[k].abs().max()))}"' if k in gmax else "")
        + f"{' class=on' if k == first else ''}>{k}</button>"
        for k, v in comps.items()
    )
    if grouped is None:
        switch = ""
        panes = f'<div class="toks">{_token_spans(result, comps)}</div>'
        panes += _top_table(result, comps, top_k)
    else:
        token_pane = f'<div class="toks">{_token_spans(result, comps)}</div>'
        token_pane += _top_table(result, comps, top_k)
        switch, panes = group_view(grouped, list(comps), token_pane, _target_span(result), top_k)
    heading = target_heading(result)
    if heading is None:
        target = html.escape(visible_token(token_strings(result)[result.target]))
        p = fmt(math.exp(result.target_log_prob))
        title = (
            f'Target <span class="tgt">{target}</span> at position '
            f"{result.target} · p = {p} <small>log p = {fmt(result.target_log_prob)} · "
        )
    else:
        kind, description = html.escape(result.target_kind), html.escape(result.target_description)
        title = (
            f'Target <span class="tgt">{kind}</span> {description} · f = '
            f"{fmt(result.target_value)} <small>{result.target} context tokens · "
        )
    return (
        f'<section class="heta"><h2>{title}{html.escape(result.method)}</small></h2>'
        f'<div class="bar">{switch}{buttons} <span class="scale">max |value| = '
        f'<span class="max">{fmt(float(comps[first].abs().max()))}</span></span></div>'
        f"{panes}"
        f"{'' if heads is None else heads_html(result, heads, top_k=top_k)}"
        f"{interactions_html(result) if interactions else ''}</section>"
    )


def _jsonable(value: Any) -> Any:
    """Replace non-finite floats by ``None`` (strict JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _script_json(value: Any) -> str:
    """JSON that is safe inside ``<script>`` (no ``<``, ``>``, ``&``: no early ``</script>``)."""
    text = json.dumps(_jsonable(value), allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_CSS = (
    """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:14px;color:#111}
h1{font-size:17px;margin:0 0 10px}
section.heta{border:1px solid #ddd;border-radius:6px;padding:8px 12px 10px;margin:0 0 12px}
h2{font-size:15px;font-weight:600;margin:0 0 6px}
h2 small{font-weight:400;color:#666;margin-left:6px}
.tgt{font-family:ui-monospace,monospace;background:#111;color:#fff;padding:0 5px;border-radius:3px}
.bar{font-size:12px;color:#555;margin:0 0 6px}
button{font:inherit;border:1px solid #bbb;background:#f5f5f5;border-radius:4px;
 padding:1px 8px;margin-right:3px;cursor:pointer}
button.on{background:#222;color:#fff;border-color:#222}
.views{margin-right:10px}
.scale{margin-left:8px}
.toks{font-family:ui-monospace,monospace;line-height:2.1}
.tok{padding:2px 3px;margin:0 1px;border:1px solid #e3e3e3;border-radius:3px;white-space:pre}
.tok.target{outline:2px solid #111;font-weight:700;background:#fff}
.tok.target::after{content:" \\25C0  target";font-weight:400;font-size:11px;color:#666}
table{border-collapse:collapse;font-size:12px;margin-top:8px}
th,td{padding:1px 8px;text-align:right;border-bottom:1px solid #eee}
th{color:#555;font-weight:600}
.t{text-align:left;font-family:ui-monospace,monospace}
"""
    + MAPS_CSS
)

_JS = """
(function () {
HEAT  document.querySelectorAll("section.heta").forEach(function (sec) {
    var buttons = sec.querySelectorAll("button[data-comp]");
    var views = sec.querySelectorAll("button[data-view]");
    function showMax() {
      var on = sec.querySelector("button[data-comp].on");
      var key = sec.getAttribute("data-view") === "group" ? "data-gmax" : "data-max";
      sec.querySelector(".max").textContent = on.getAttribute(key);
    }
    views.forEach(function (btn) {
      btn.addEventListener("click", function () {
        var view = btn.getAttribute("data-view");
        views.forEach(function (b) { b.classList.toggle("on", b === btn); });
        sec.setAttribute("data-view", view);
        sec.querySelectorAll("[data-pane]").forEach(function (p) {
          p.hidden = p.getAttribute("data-pane") !== view;
        });
        showMax();
      });
    });
    buttons.forEach(function (btn) {
      btn.addEventListener("click", function () {
        var comp = btn.getAttribute("data-comp");
        buttons.forEach(function (b) { b.classList.toggle("on", b === btn); });
        sec.querySelectorAll(".tok:not(.target)").forEach(function (t) {
          var v = parseFloat(t.getAttribute("data-" + comp) || "0");
          t.style.background = heat(v);
          t.style.color = Math.min(Math.abs(v), 1) > DARK ? "#fff" : "#111";
        });
        showMax();
      });
    });
  });
})();
""".replace("HEAT", heat_js()).replace("DARK", str(DARK))


@typechecked
def to_html(
    results: Results,
    *,
    components: Sequence[str] = DEFAULT_COMPONENTS,
    top_k: int = 10,
    title: str | None = None,
    aggregate: str | None = None,
    tokenizer: Any = None,
    heads: HeadsChoice | None = None,
    interactions: bool = False,
) -> str:
    """A self-contained HTML page (no network needed) showing one or more attributions.

    One section per result: the target token and p = exp(``target_log_prob``), a switcher over
    the components, the context tokens coloured by the selected one (each component divided by
    its largest magnitude: white = 0, red = max, blue for negative values), the target outlined,
    tooltips with the position and every component, and the ``top_k`` tokens by score. With
    ``aggregate``, a tokens/words (sentences) switch shows the same section over words:
    :meth:`~heta_lens.AttributionResult.aggregate`'s summed components, coloured on their own
    scale, and the top words. The results'
    :meth:`~heta_lens.AttributionResult.to_dict` are embedded as JSON (NaN → null).

    Args:
        results: One result or a list (one section each, e.g. per generated token).
        components: Names from :data:`~heta_lens.viz.COMPONENTS`; those a result lacks are
            left out.
        top_k: Rows of the ranked table.
        title: Page title (default: names the method and number of results).
        aggregate: ``"word"`` or ``"sentence"`` adds that view; ``None`` (default): tokens only.
        tokenizer: The model's tokenizer for the grouping (offsets, special tokens); without
            it the results' token strings are read.
        heads: Add the gate-by-head view (:func:`heta_lens.viz.maps.heads_html`) of this
            context position, or of each result's top-scoring token for ``"top"``; the
            results need ``gate_by_head``.
        interactions: Add the curvature interaction heatmap
            (:func:`heta_lens.viz.maps.interactions_html`); the results need ``interactions``.
            One cell per token pair: the page grows as ctx² (about 125 bytes a cell).

    Returns:
        The page, inline CSS and JS only.

    Raises:
        ValueError: No results, an unknown component, an unknown ``aggregate`` level, or a
            view whose output a result lacks (or a ``heads`` position outside its context).

    Examples:
        >>> import torch
        >>> from heta_lens import attribute
        >>> from heta_lens.testing import tiny_bridge
        >>> page = to_html(attribute(tiny_bridge(), torch.tensor([1, 5, 7, 3, 9])))
        >>> "https://" in page, len(results_from_html(page))
        (False, 1)
    """
    items = as_list(results)
    check_components(components)
    methods = ", ".join(dict.fromkeys(r.method for r in items))
    what = f"{len(items)} {methods} attributions" if len(items) > 1 else f"{methods} attribution"
    title = title if title is not None else f"heta-lens · {what}"
    if aggregate is not None and aggregate not in LEVELS:
        raise ValueError(f"aggregate must be one of {LEVELS} or None; got {aggregate!r}")
    sections = "\n".join(
        _section(
            r,
            components,
            top_k,
            None if aggregate is None else r.aggregate(aggregate, tokenizer=tokenizer),
            heads,
            interactions,
        )
        for r in items
    )
    data = _script_json({"format": "heta-lens-viz/1", "results": [r.to_dict() for r in items]})
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>"
        f"<h1>{html.escape(title)}</h1>\n{sections}\n"
        f'<script type="application/json" id="{_DATA_ID}">{data}</script>\n'
        f"<script>{_JS}</script>\n</body></html>\n"
    )


@typechecked
def save_html(results: Results, path: str | Path, **kwargs: Any) -> Path:
    """Write :func:`to_html` (UTF-8) to ``path``; keyword arguments go to :func:`to_html`.

    Returns:
        The path written.
    """
    path = Path(path)
    path.write_text(to_html(results, **kwargs), encoding="utf-8")
    return path


@typechecked
def results_from_html(page: str) -> list[AttributionResult]:
    """Read back the results embedded in a page from :func:`to_html`.

    Raises:
        ValueError: The page has no embedded heta-lens data.
    """
    match = re.search(rf'<script type="application/json" id="{_DATA_ID}">(.*?)</script>', page)
    if match is None:
        raise ValueError("no heta-lens data in this page")
    out = []
    for data in json.loads(match.group(1))["results"]:
        for key in ("target_log_prob", "target_value"):
            if key in data and data[key] is None:
                data[key] = float("nan")
        out.append(from_dict(data))
    return out
