"""What the demo page shows, as plain strings and rows: coloured tokens, breakdown, summary.

No Gradio here. The token view is static HTML (Gradio's ``gr.HTML`` runs no inline scripts):
every context token is a ``<span class="heta-tok">`` whose background encodes the selected
component and whose ``title`` (the browser's hover tooltip) lists every value.
"""

import html
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from heta_lens._typing import typechecked
from heta_lens.result import AttributionResult, HetaResult
from heta_lens.viz import cells
from heta_lens.viz.cells import (
    fmt,
    span,
    target_cell,
    target_heading,
    token_strings,
    tooltip,
    visible_token,
)

COMPONENTS = cells.DEFAULT_COMPONENTS
"""Columns of the breakdown, in order; baselines have only ``score``."""


@dataclass(frozen=True, kw_only=True)
class Breakdown:
    """The component table: one row per context token, ranked by score.

    Attributes:
        headers: ``rank, pos, token`` then the components the result has.
        rows: One tuple per context token; missing (non-finite) values are ``None``.
    """

    headers: tuple[str, ...]
    rows: tuple[tuple[int | str | float | None, ...], ...]

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.headers):
                raise ValueError(f"row {row} does not match headers {self.headers}")


def components(result: AttributionResult) -> dict[str, Tensor]:
    """The score and, for HETA results, the raw gate, curvature and information present.

    Values are float64 on the CPU, one per context token.
    """
    return cells.components(result, COMPONENTS)


@typechecked
def render_tokens(result: AttributionResult, *, component: str = "score") -> str:
    """The context tokens coloured by ``component``, with every value in their hover title.

    One ``<span class="heta-tok">`` per context token (positions ``0..target-1``), then the
    target as ``<span class="heta-target">`` (:func:`heta_lens.viz.cells.target_cell`: the
    token, a span's continuation, or ``→ f`` titled with what f is and its value). Colours
    are the component divided by its largest magnitude (white = 0, red = largest, blue for
    negative values). Falls back to the score when the result lacks ``component``.

    Examples:
        >>> import torch
        >>> r = AttributionResult(tokens=torch.tensor([1, 5, 7]), target=2,
        ...                       scores=torch.tensor([0.0, 2.0]), method="toy")
        >>> page = render_tokens(r)
        >>> page.count('class="heta-tok"'), "score = 2" in page
        (2, True)
    """
    values = components(result)
    shown = values[component] if component in values else values["score"]
    scale = cells.max_abs(shown)
    strings = token_strings(result)
    spans = []
    for pos in range(result.target):
        token = visible_token(strings[pos])
        style = cells.cell_style(float(shown[pos]), scale, prop="background-color")
        tip = tooltip(f"pos {pos}: {token}", values, pos)
        spans.append(
            span("heta-tok", token, [("data-pos", str(pos)), ("title", tip), ("style", style)])
        )
    text, tip = target_cell(result)
    spans.append(span("heta-target", text, [("title", tip)]))
    name = component if component in values else "score"
    legend = (
        f'<div class="heta-legend">colour: {html.escape(name)} · white = 0, red = largest '
        f"(|max| = {fmt(scale)}) · hover a token for all values</div>"
    )
    return f'<div class="heta-tokens">{"".join(spans)}</div>{legend}'


@typechecked
def breakdown(result: AttributionResult) -> Breakdown:
    """Every context token ranked by score, with each component's value (4 significant
    digits; non-finite values become ``None``)."""
    values = components(result)
    strings = result.str_tokens()
    order = torch.argsort(torch.nan_to_num(values["score"], nan=-math.inf), descending=True)
    rows = []
    for rank, pos in enumerate(order.tolist(), start=1):
        rounded = [float(f"{float(v[pos]):.4g}") for v in values.values()]
        rows.append(
            (
                rank,
                pos,
                visible_token(strings[pos]),
                *(c if math.isfinite(c) else None for c in rounded),
            )
        )
    return Breakdown(headers=("rank", "pos", "token", *values), rows=tuple(rows))


def summary_markdown(
    result: AttributionResult, *, preset: str | None, seconds: float, generated: bool
) -> str:
    """One Markdown line: what is explained, method, preset and time.

    A token target is named with its probability; another kind by its
    :func:`~heta_lens.viz.cells.target_heading` (kind, what f is, f's value), as in the
    table of ``heta-lens attribute``. ``generated``: the token, or the contrast's answer, is
    the model's greedy next token.
    """
    used = f" · preset `{preset}`" if preset and isinstance(result, HetaResult) else ""
    tail = f"from {result.target} context tokens · method `{result.method}`{used} · {seconds:.1f} s"
    heading = target_heading(result)
    if heading is not None:
        answer = " (answer: the model's greedy next token)" if generated else ""
        what = heading.replace("`", "'")
        return f"**Explaining** `{what}`{answer} {tail}"
    token = visible_token(token_strings(result)[result.target]).replace("`", "'")
    kind = "predicted next token" if generated else "token"
    p = math.exp(result.target_log_prob) if math.isfinite(result.target_log_prob) else math.nan
    return f"**Explaining the {kind} `{token}`** at position {result.target} (p = {fmt(p)}) {tail}"


def message_html(text: str) -> str:
    """An error/notice box for the page (escaped; never a traceback)."""
    return f'<div class="heta-message" role="alert">⚠ {html.escape(text)}</div>'
