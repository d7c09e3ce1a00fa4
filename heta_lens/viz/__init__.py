"""Visualise attributions: terminal table, self-contained HTML page, circuitsvis view.

One renderer over :class:`~heta_lens.AttributionResult` (a :class:`~heta_lens.HetaResult`
adds the gate, curvature and information components; components that are ``None``, as in the
ablations, are left out). :mod:`heta_lens.viz.cells` owns what every view shares — which
components a result has, the visible token strings, the number format and the colour scale —
and the CLI and the demo (:mod:`heta_lens.demo.render`) render through it:

- :func:`format_table` (:mod:`~heta_lens.viz.table`): the ranked plain-text table that
  ``heta-lens attribute`` prints; :func:`format_groups_table` the same over words or
  sentences (``--aggregate``).
- :func:`colored_tokens` (:mod:`~heta_lens.viz.notebook`) returns circuitsvis's
  ``colored_tokens_multi`` view, one button per component. circuitsvis is imported only when
  it is called (``pip install 'heta-lens[viz]'``).
- :func:`to_html` / :func:`save_html` (:mod:`~heta_lens.viz.page`) build a self-contained
  page (inline CSS and JS, no external URL at all, so it renders offline): a component
  switcher, the context tokens coloured by the selected component, hover tooltips with every
  value, a top-k table, and the results embedded as JSON (:func:`results_from_html` reads
  them back); with ``aggregate="word"`` a tokens/words switch (:mod:`~heta_lens.viz.groups`).

The HTML and circuitsvis views accept one result or a list of them, e.g. one per generated
token (``--generate``).

Inside HETA (:mod:`~heta_lens.viz.maps`), for results that kept them: ``to_html(...,
heads="top" | POS)`` adds the layer × head heatmap of one token's gate and the ranked heads
table (:func:`format_heads` prints that table), ``to_html(..., interactions=True)`` the
``[ctx, ctx]`` curvature interaction heatmap (:func:`interaction_map`: the same map in
circuitsvis's ``attention_pattern``).
"""

from heta_lens.viz.cells import COMPONENTS, DEFAULT_COMPONENTS, visible_token
from heta_lens.viz.notebook import (
    TARGET_MARK,
    Results,
    colored_tokens,
    colored_tokens_data,
    interaction_map,
)
from heta_lens.viz.page import results_from_html, save_html, to_html
from heta_lens.viz.table import format_groups_table, format_heads, format_table

__all__ = [
    "COMPONENTS",
    "DEFAULT_COMPONENTS",
    "TARGET_MARK",
    "Results",
    "colored_tokens",
    "colored_tokens_data",
    "format_groups_table",
    "format_heads",
    "format_table",
    "interaction_map",
    "results_from_html",
    "save_html",
    "to_html",
    "visible_token",
]
