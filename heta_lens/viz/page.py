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
    DEFAULT_COMPONENTS,
    cell_style,
    check_components,
    components,
    fmt,
    normalise,
    span,
    target_cell,
    target_heading,
    token_strings,
    tooltip,
    visible_token,
)
from heta_lens.viz.groups import group_components, group_view
from heta_lens.viz.maps import HeadsChoice, heads_html, interactions_html
from heta_lens.viz.notebook import Results, as_list
from heta_lens.viz.page_assets import CSS, JS
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
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>"
        f"<h1>{html.escape(title)}</h1>\n{sections}\n"
        f'<script type="application/json" id="{_DATA_ID}">{data}</script>\n'
        f"<script>{JS}</script>\n</body></html>\n"
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
