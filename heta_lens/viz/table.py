"""The ranked plain-text tables that ``heta-lens attribute`` prints in the terminal."""

import math

from heta_lens.aggregate import AggregatedResult
from heta_lens.result import AttributionResult, HetaResult
from heta_lens.viz.cells import DEFAULT_COMPONENTS, component, target_heading

_WIDTHS = {"score": 10, "gate": 10, "curvature": 10, "information": 11}


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


_HEAD = " ".join(f"{name:>{_WIDTHS[name]}}" for name in DEFAULT_COMPONENTS)


def _heading(result: AttributionResult) -> str:
    heading = target_heading(result)
    if heading is None:
        target = (
            result.token_strings[result.target]
            if result.token_strings
            else str(result.target_token)
        )
        heading = f"[{result.target}] {target!r}  p={math.exp(result.target_log_prob):.4f}"
    return f"target {heading}  method={result.method}"


def format_table(result: AttributionResult, *, top: int) -> str:
    """A ranked plain-text table of the ``top`` context tokens.

    One line names the target (the token and its probability, or the kind of target, what
    f is and its value) and the method; then one row per token, best
    score first: rank, position, the token's ``repr`` and the components of
    :data:`~heta_lens.viz.DEFAULT_COMPONENTS` (``-`` where the result has none).

    Examples:
        >>> import torch
        >>> r = AttributionResult(tokens=torch.tensor([1, 5, 7]), target=2,
        ...                       scores=torch.tensor([0.0, 2.0]), method="toy")
        >>> print(format_table(r, top=1))
        target [2] '7'  p=nan  method=toy
        rank  pos  token                 score       gate  curvature information
           1    1  '5'                       2          -          -           -
    """
    values = {name: component(result, name) for name in DEFAULT_COMPONENTS[1:]}
    lines = [_heading(result), f"{'rank':>4} {'pos':>4}  {'token':<16} {_HEAD}"]
    for rank, (pos, token, score) in enumerate(result.top(top), start=1):
        cells = " ".join(
            f"{_cell(None if v is None else float(v[pos])):>{_WIDTHS[name]}}"
            for name, v in values.items()
        )
        lines.append(f"{rank:>4} {pos:>4}  {token!r:<16} {score:>10.4g} {cells}")
    return "\n".join(lines)


def format_groups_table(grouped: AggregatedResult, *, top: int) -> str:
    """The ranked table of :func:`format_table` over words, sentences or spans.

    One row per group, best summed score first: rank, the group's token range ``a-b``
    (inclusive), its text's ``repr`` and its summed components.

    Examples:
        >>> import torch
        >>> r = AttributionResult(tokens=torch.tensor([1, 5, 7, 3]), target=3,
        ...     scores=torch.tensor([0.0, 2.0, 1.0]), method="toy",
        ...     token_strings=("<s>", " Eiff", "el", " Tower"))
        >>> print(format_groups_table(r.aggregate("word"), top=1))
        target [3] ' Tower'  p=nan  method=toy  (2 words)
        rank tokens  word                  score       gate  curvature information
           1   1-2   ' Eiffel'                 3          -          -           -
    """
    singular = "span" if grouped.level == "custom" else grouped.level
    lines = [
        f"{_heading(grouped.source)}  ({len(grouped.groups)} {singular}s)",
        f"{'rank':>4} {'tokens':>6}  {singular:<16} {_HEAD}",
    ]
    for rank, (g, text, score) in enumerate(grouped.top(top), start=1):
        a, b = grouped.groups[g]
        parts = grouped.components
        cells = " ".join(
            f"{_cell(float(parts[n][g]) if n in parts else None):>{_WIDTHS[n]}}"
            for n in DEFAULT_COMPONENTS[1:]
        )
        lines.append(f"{rank:>4} {f'{a}-{b - 1}':>6}  {text!r:<16} {score:>10.4g} {cells}")
    return "\n".join(lines)


def format_heads(result: AttributionResult, *, position: int, top: int = 10) -> str:
    """The ranked "heads carrying token ``position``" table (needs ``gate_by_head``).

    One line names the token, its raw gate value and each layer's share of it; then one row
    per head, largest mass first: rank, layer, head, mass (``gate_by_head[layer, head,
    position]``) and its share of the token's gate.

    Raises:
        ValueError: The result has no ``gate_by_head``, or ``position`` is outside the context.

    Examples:
        >>> import torch
        >>> from heta_lens import HetaConfig, attribute
        >>> from heta_lens.testing import tiny_bridge
        >>> config = HetaConfig(gate_by_head=True, use_curvature=False, use_information=False)
        >>> r = attribute(tiny_bridge(), torch.tensor([1, 5, 7, 3]), config=config)
        >>> print(format_heads(r, position=1, top=2).splitlines()[1])
        rank  layer  head       mass  % of gate
    """
    if not isinstance(result, HetaResult) or result.gate_by_head is None:
        raise ValueError(
            f"result ({result.method}) has no gate_by_head: attribute with "
            "HetaConfig(gate_by_head=True)"
        )
    ranked = result.top_heads(position, top)
    total = float(result.gate[position])
    layers = result.gate_by_head[:, :, position].sum(dim=1)
    shares = " ".join(f"L{layer}={_percent(float(v), total)}" for layer, v in enumerate(layers))
    token = result.str_tokens()[position]
    lines = [
        f"heads carrying [{position}] {token!r}  gate={total:.4g}  by layer: {shares}",
        f"{'rank':>4} {'layer':>6} {'head':>5} {'mass':>10} {'% of gate':>10}",
    ]
    for rank, (layer, head, mass) in enumerate(ranked, start=1):
        lines.append(f"{rank:>4} {layer:>6} {head:>5} {mass:>10.4g} {_percent(mass, total):>10}")
    return "\n".join(lines)


def _percent(value: float, total: float) -> str:
    return f"{value / total * 100:.1f}%" if total > 0 else "-"
