"""The ranked plain-text table that ``heta-lens attribute`` prints in the terminal."""

import math

from heta_lens.result import AttributionResult
from heta_lens.viz.cells import DEFAULT_COMPONENTS, component, target_heading

_WIDTHS = {"score": 10, "gate": 10, "curvature": 10, "information": 11}


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


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
    extra = DEFAULT_COMPONENTS[1:]
    values = {name: component(result, name) for name in extra}
    head = " ".join(f"{name:>{_WIDTHS[name]}}" for name in DEFAULT_COMPONENTS)
    heading = target_heading(result)
    if heading is None:
        target = (
            result.token_strings[result.target]
            if result.token_strings
            else str(result.target_token)
        )
        heading = f"[{result.target}] {target!r}  p={math.exp(result.target_log_prob):.4f}"
    lines = [
        f"target {heading}  method={result.method}",
        f"{'rank':>4} {'pos':>4}  {'token':<16} {head}",
    ]
    for rank, (pos, token, score) in enumerate(result.top(top), start=1):
        cells = " ".join(
            f"{_cell(None if v is None else float(v[pos])):>{_WIDTHS[name]}}"
            for name, v in values.items()
        )
        lines.append(f"{rank:>4} {pos:>4}  {token!r:<16} {score:>10.4g} {cells}")
    return "\n".join(lines)
