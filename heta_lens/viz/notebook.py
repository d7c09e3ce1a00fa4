"""circuitsvis's ``colored_tokens_multi`` view of attributions, for notebooks.

circuitsvis is imported only when :func:`colored_tokens` is called
(``pip install 'heta-lens[viz]'``); :func:`colored_tokens_data` needs nothing beyond torch.
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float
from torch import Tensor

from heta_lens._typing import typechecked
from heta_lens.result import AttributionResult
from heta_lens.viz.cells import (
    DEFAULT_COMPONENTS,
    check_components,
    token_strings,
    visible_token,
)
from heta_lens.viz.cells import components as present_components
from heta_lens.viz.maps import interaction_scale

if TYPE_CHECKING:
    from circuitsvis.utils.render import RenderedHTML

TARGET_MARK = "→"
"""Prefix of the explained (target) token in :func:`colored_tokens`."""
_VIZ_EXTRA = "heta_lens.viz.colored_tokens needs circuitsvis: pip install 'heta-lens[viz]'"

Results = AttributionResult | Sequence[AttributionResult]


def as_list(results: Results) -> list[AttributionResult]:
    """One result or several, as a non-empty list.

    Raises:
        ValueError: No results.
    """
    items = [results] if isinstance(results, AttributionResult) else list(results)
    if not items:
        raise ValueError("no results to show")
    return items


@typechecked
def colored_tokens_data(
    results: Results, *, components: Sequence[str] = DEFAULT_COMPONENTS
) -> tuple[list[str], Float[Tensor, "pos component"], list[str]]:
    """The ``(tokens, values, labels)`` that :func:`colored_tokens` hands to circuitsvis.

    The tokens are the context plus the target (``pos = target + 1``), made visible with
    :func:`~heta_lens.viz.visible_token`; the target gets the :data:`TARGET_MARK` prefix and the
    value 0 in every column (it explains itself with nothing). Values are raw (circuitsvis
    scales each column by its own max/min); non-finite ones become 0.

    A list of results over one growing sequence (the ``--generate`` workflow) is combined into
    one view over the longest prefix: every explained token is marked, there is one column per
    (result, component) labelled ``"score →w9@4"``, and a result's column is 0 from its target on.

    Args:
        results: One result, or several explaining tokens of one sequence.
        components: Names from :data:`~heta_lens.viz.COMPONENTS`; those a result lacks are
            left out.

    Returns:
        Token strings ``[pos]``, float64 values ``[pos, component]`` and column labels.

    Raises:
        ValueError: No results, an unknown component, or results over different sequences.
    """
    items = as_list(results)
    check_components(components)
    ref = max(items, key=lambda r: r.target)
    n = ref.target + 1
    ids = ref.tokens[:n].cpu()
    for r in items:
        if not torch.equal(r.tokens[: r.target + 1].cpu(), ids[: r.target + 1]):
            raise ValueError(
                "results explain tokens of different sequences; show them one at a time"
            )
    targets = {r.target for r in items}
    strings = [visible_token(s) for s in token_strings(ref)[:n]]
    tokens = [TARGET_MARK + s if i in targets else s for i, s in enumerate(strings)]
    columns: list[Tensor] = []
    labels: list[str] = []
    for r in items:
        for name, value in present_components(r, components).items():
            column = torch.zeros(n, dtype=torch.float64)
            column[: r.target] = torch.nan_to_num(value, nan=0.0, posinf=0.0, neginf=0.0)
            columns.append(column)
            suffix = f" {TARGET_MARK}{strings[r.target]}@{r.target}" if len(items) > 1 else ""
            labels.append(name + suffix)
    return tokens, torch.stack(columns, dim=1), labels


def colored_tokens(
    results: Results, *, components: Sequence[str] = DEFAULT_COMPONENTS
) -> "RenderedHTML":
    """A circuitsvis ``colored_tokens_multi`` view of one result or a ``--generate`` list.

    One button per component colours the tokens; hovering a token lists all its values. The
    layout (target marked, value 0) is that of :func:`colored_tokens_data`. For a page that
    renders offline use :func:`~heta_lens.viz.save_html` (circuitsvis loads its JavaScript
    from a CDN when online).

    Args:
        results: One result, or several explaining tokens of one sequence.
        components: Names from :data:`~heta_lens.viz.COMPONENTS`; those a result lacks are
            left out.

    Returns:
        circuitsvis's ``RenderedHTML`` (shown by Jupyter; ``str()`` gives its HTML).

    Raises:
        ImportError: circuitsvis is not installed (the ``viz`` extra).
        ValueError: As :func:`colored_tokens_data`.
    """
    try:
        from circuitsvis.tokens import colored_tokens_multi
    except ImportError as err:
        raise ImportError(_VIZ_EXTRA) from err
    tokens, values, labels = colored_tokens_data(results, components=components)
    return colored_tokens_multi(tokens=tokens, values=values, labels=labels)


def interaction_map(result: AttributionResult) -> "RenderedHTML":
    """The curvature interaction map of a result as circuitsvis's ``attention_pattern``
    heatmap (a token × token matrix: row i, probed token j; hover for values).

    The colour scale tops out at the largest off-diagonal value, so the diagonal (= S) is
    capped and the cross-token terms stay visible; the upper triangle is shown (H couples
    every pair of context tokens, not only causal ones). The layer × head gate view has no
    fitting circuitsvis component: use :func:`~heta_lens.viz.save_html` with ``heads=``.

    Raises:
        ImportError: circuitsvis is not installed (the ``viz`` extra).
        ValueError: The result has no ``interactions``.
    """
    values = getattr(result, "interactions", None)
    if not isinstance(values, Tensor):
        raise ValueError(
            f"result ({result.method}) has no interactions: attribute with Exact(interactions=True)"
        )
    try:
        from circuitsvis.attention import attention_pattern
    except ImportError as err:
        raise ImportError(_VIZ_EXTRA) from err
    values = values.detach().to("cpu", torch.float64)
    tokens = [visible_token(s) for s in token_strings(result)[: result.target]]
    return attention_pattern(
        tokens=tokens,
        attention=values,
        max_value=interaction_scale(values),
        min_value=0.0,
        mask_upper_tri=False,
    )
