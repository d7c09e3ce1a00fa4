"""The one colour scale and token-cell format that every view of an attribution uses.

The HTML page (:mod:`heta_lens.viz.page`), the demo (:mod:`heta_lens.demo.render`) and the
terminal table (:mod:`heta_lens.viz.table`) take from here: which components a result has,
how a token string is made visible, how a value is printed, and how a value is coloured
(white = 0, red = the largest positive value, blue = the most negative; white text on dark
cells). The page's JavaScript switcher gets the same scale from :func:`heat_js`.
"""

import html
import math
from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import Tensor

from heta_lens._typing import typechecked
from heta_lens.result import AttributionResult

DEFAULT_COMPONENTS = ("score", "gate", "curvature", "information")
COMPONENTS = (*DEFAULT_COMPONENTS, "gate_term", "curvature_term", "information_term")
"""Components that can be shown; ``"score"`` is ``result.scores``, the others are fields."""

POSITIVE = (220, 38, 38)
"""RGB of the largest positive value of a component (red)."""
NEGATIVE = (37, 99, 235)
"""RGB of the most negative value (blue; signed baselines)."""
DARK = 0.6
"""Above this colour strength a cell's text turns white."""

_VISIBLE = {c: chr(0x2400 + c) for c in range(32)} | {0x7F: "␡", 32: "·", 10: "⏎", 9: "⇥"}


@typechecked
def visible_token(token: str) -> str:
    """Make whitespace and control characters visible (``·`` space, ``⏎`` newline, ``⇥`` tab).

    Other control characters become their Unicode "control picture"; the empty string is ``∅``.

    Examples:
        >>> visible_token(" the\\n")
        '·the⏎'
    """
    return token.translate(_VISIBLE) if token else "∅"


def token_strings(result: AttributionResult) -> list[str]:
    """Strings of all tokens, the target included (ids as strings without a tokenizer)."""
    if result.token_strings is None:
        return [str(int(t)) for t in result.tokens]
    return list(result.token_strings)


def target_heading(result: AttributionResult) -> str | None:
    """How a non-token target is named: ``"contrast: logit(' Mary') − logit(' John') at pos
    14  f=2.31"``; ``None`` for a token target (views name the token itself)."""
    if result.target_kind == "token":
        return None
    return f"{result.target_kind}: {result.target_description}  f={fmt(result.target_value)}"


def target_cell(result: AttributionResult) -> tuple[str, str]:
    """The target's cell in a token view: its visible text and hover title.

    A token target shows the token, titled with its position and log-probability; a span its
    continuation, another kind ``→ f``, both titled with :func:`target_heading`.
    """
    strings = token_strings(result)
    heading = target_heading(result)
    if heading is None:
        tip = f"pos {result.target} (target)\nlog p = {fmt(result.target_log_prob)}"
        return visible_token(strings[result.target]), tip
    if result.target_kind == "span":
        return visible_token("".join(strings[result.target :])), heading
    return "→ f", heading


def check_components(components: Sequence[str]) -> None:
    """Raise ``ValueError`` naming the valid components when one is unknown."""
    unknown = [c for c in components if c not in COMPONENTS]
    if unknown:
        raise ValueError(f"unknown component(s) {unknown}; valid: {', '.join(COMPONENTS)}")


def component(result: AttributionResult, name: str) -> Tensor | None:
    """One component as float64 on the CPU, ``None`` when the result lacks it."""
    value = getattr(result, "scores" if name == "score" else name, None)
    return value.detach().to("cpu", torch.float64) if isinstance(value, Tensor) else None


def components(
    result: AttributionResult, names: Sequence[str] = DEFAULT_COMPONENTS
) -> dict[str, Tensor]:
    """The requested components that ``result`` has, in order (``None`` ones left out).

    Values are float64 on the CPU, one per context token.

    Raises:
        ValueError: The result has none of them.
    """
    out = {name: component(result, name) for name in names}
    present = {name: value for name, value in out.items() if value is not None}
    if not present:
        raise ValueError(f"result ({result.method}) has none of the components {list(names)}")
    return present


def fmt(value: float) -> str:
    """A value as shown in cells and tooltips: 4 significant digits, ``n/a`` if not finite."""
    return f"{value:.4g}" if math.isfinite(value) else "n/a"


def max_abs(values: Tensor) -> float:
    """The largest magnitude, non-finite values counted as 0 (0 for no values)."""
    finite = torch.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    return float(finite.abs().max()) if finite.numel() else 0.0


def normalise(values: Tensor) -> list[float]:
    """Divide by :func:`max_abs` (0 stays white; signed values map to [-1, 1])."""
    finite = torch.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    scale = max_abs(values)
    return (finite / scale).tolist() if scale > 0 else [0.0] * finite.numel()


def cell_style(value: float, scale: float = 1.0, *, prop: str = "background") -> str:
    """Inline CSS of a cell: ``prop`` white → red (white → blue when negative), white text on
    dark cells. The colour strength is ``|value| / scale`` capped at 1; 0 for a non-finite
    value or scale ≤ 0.

    Examples:
        >>> cell_style(-0.5)
        'background:rgb(146,177,245);color:#111'
    """
    a = min(abs(value) / scale, 1.0) if scale > 0 and math.isfinite(value) else 0.0
    r, g, b = (round(255 + (c - 255) * a) for c in (POSITIVE if value >= 0 else NEGATIVE))
    return f"{prop}:rgb({r},{g},{b});color:{'#fff' if a > DARK else '#111'}"


def heat_js() -> str:
    """:func:`cell_style`'s background as a JavaScript ``heat(v)`` for normalised ``v``."""
    pos, neg = (", ".join(str(c) for c in rgb) for rgb in (POSITIVE, NEGATIVE))
    return (
        "  function heat(v) {\n"
        f"    var a = Math.min(Math.abs(v), 1), c = v >= 0 ? [{pos}] : [{neg}];\n"
        '    return "rgb(" + c.map(function (x) { '
        'return Math.round(255 + (x - 255) * a); }) + ")";\n'
        "  }\n"
    )


def tooltip(head: str, values: Mapping[str, Tensor], pos: int) -> str:
    """``head`` then one ``name = value`` line per component at ``pos``."""
    return "\n".join([head, *(f"{k} = {fmt(float(v[pos]))}" for k, v in values.items())])


def span(cls: str, text: str, attrs: Iterable[tuple[str, str]] = ()) -> str:
    """``<span class=cls ...>text</span>``, the text and every attribute value HTML-escaped."""
    extra = "".join(f' {name}="{html.escape(value)}"' for name, value in attrs)
    return f'<span class="{cls}"{extra}>{html.escape(text)}</span>'
