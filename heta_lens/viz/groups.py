"""The word (sentence, span) view of the HTML page: cells and a ranked table per group.

:func:`heta_lens.viz.to_html` with ``aggregate="word"`` adds this view to each section next to
the token view, with a tokens/words switch; the cells use the colour scale of
:mod:`heta_lens.viz.cells`, each component divided by its largest magnitude over the groups.
"""

import html
from collections.abc import Sequence

from torch import Tensor

from heta_lens.aggregate import AggregatedResult
from heta_lens.viz.cells import cell_style, fmt, normalise, span, tooltip, visible_token

VIEW_NAMES = {"word": "words", "sentence": "sentences", "custom": "spans"}
"""The switch button's label for each level."""


def group_components(grouped: AggregatedResult, names: Sequence[str]) -> dict[str, Tensor]:
    """The summed components among ``names`` (``"score"``: the summed scores), in order."""
    out = {}
    for name in names:
        value = grouped.scores if name == "score" else grouped.components.get(name)
        if value is not None:
            out[name] = value
    return out


def group_cells(grouped: AggregatedResult, comps: dict[str, Tensor]) -> str:
    """One coloured cell per group; the tooltip gives its token range and every value."""
    norms = {name: normalise(value) for name, value in comps.items()}
    first = next(iter(norms))
    cells = []
    for g, (a, b) in enumerate(grouped.groups):
        head = f"{grouped.level} {g}: tokens {a}–{b - 1}" + (
            " (special)" if grouped.special[g] else ""
        )
        attrs = [("title", tooltip(head, comps, g))]
        attrs += [(f"data-{k}", f"{n[g]:.4f}") for k, n in norms.items()]
        attrs.append(("style", cell_style(norms[first][g])))
        cells.append(span("tok grp", visible_token(grouped.strings[g]), attrs))
    return "".join(cells)


def group_table(grouped: AggregatedResult, comps: dict[str, Tensor], top_k: int) -> str:
    """The ``top_k`` groups by summed score: rank, token range, text and every component."""
    norms = {name: normalise(value) for name, value in comps.items()}
    head = "".join(f"<th>{html.escape(name)}</th>" for name in comps)
    rows = []
    for rank, (g, text, _) in enumerate(grouped.top(top_k), start=1):
        a, b = grouped.groups[g]
        cells = "".join(
            f'<td style="{cell_style(norms[k][g])}">{fmt(float(v[g]))}</td>'
            for k, v in comps.items()
        )
        shown = html.escape(visible_token(text))
        rows.append(
            f'<tr><td>{rank}</td><td>{a}–{b - 1}</td><td class="t">{shown}</td>{cells}</tr>'
        )
    label = html.escape(VIEW_NAMES.get(grouped.level, grouped.level))
    return (
        f'<table><thead><tr><th>#</th><th>tokens</th><th class="t">{label}</th>{head}</tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
    )


def group_view(
    grouped: AggregatedResult, names: Sequence[str], token_pane: str, target: str, top_k: int
) -> tuple[str, str]:
    """A section's tokens/words switch and its two panes (the group pane hidden at first).

    Args:
        grouped: The section's result, aggregated.
        names: The components the token pane shows.
        token_pane: The token pane's HTML (cells and table).
        target: The target cell's HTML, shown after the groups too.
        top_k: Rows of the group table.
    """
    comps = group_components(grouped, names)
    label = html.escape(VIEW_NAMES.get(grouped.level, grouped.level))
    switch = (
        '<span class="views"><button type="button" data-view="token" class=on>tokens</button>'
        f'<button type="button" data-view="group">{label}</button></span> '
    )
    panes = (
        f'<div data-pane="token">{token_pane}</div><div data-pane="group" hidden>'
        f'<div class="toks">{group_cells(grouped, comps)}{target}</div>'
        f"{group_table(grouped, comps, top_k)}</div>"
    )
    return switch, panes
