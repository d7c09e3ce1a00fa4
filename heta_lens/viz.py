"""Visualise attributions: circuitsvis views for notebooks and self-contained HTML pages.

Two thin layers over :class:`~heta_lens.AttributionResult` (a :class:`~heta_lens.HetaResult`
adds the gate, curvature and information components; components that are ``None``, as in the
ablations, are left out):

- :func:`colored_tokens` returns circuitsvis's ``colored_tokens_multi`` view, one button per
  component. circuitsvis is imported only when it is called (``pip install 'heta-lens[viz]'``).
- :func:`to_html` / :func:`save_html` build a self-contained page (inline CSS and JS, no external
  URL at all, so it renders offline): a component switcher, the context tokens coloured by the
  selected component, hover tooltips with every value, a top-k table, and the results embedded
  as JSON (:func:`results_from_html` reads them back).

Both accept one result or a list of them, e.g. one per generated token (``--generate``).
"""

import html
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float
from torch import Tensor

from heta_lens._typing import typechecked
from heta_lens.result import AttributionResult, from_dict

if TYPE_CHECKING:
    from circuitsvis.utils.render import RenderedHTML

DEFAULT_COMPONENTS = ("score", "gate", "curvature", "information")
COMPONENTS = (*DEFAULT_COMPONENTS, "gate_term", "curvature_term", "information_term")
"""Components that can be shown; ``"score"`` is ``result.scores``, the others are fields."""
TARGET_MARK = "→"
"""Prefix of the explained (target) token in :func:`colored_tokens`."""

_POSITIVE = (220, 38, 38)  # red: the largest positive value of a component
_NEGATIVE = (37, 99, 235)  # blue: the most negative value (signed baselines)
_VISIBLE = {c: chr(0x2400 + c) for c in range(32)} | {0x7F: "␡", 32: "·", 10: "⏎", 9: "⇥"}
_DATA_ID = "heta-lens-data"
_VIZ_EXTRA = "heta_lens.viz.colored_tokens needs circuitsvis: pip install 'heta-lens[viz]'"

Results = AttributionResult | Sequence[AttributionResult]


@typechecked
def visible_token(token: str) -> str:
    """Make whitespace and control characters visible (``·`` space, ``⏎`` newline, ``⇥`` tab).

    Other control characters become their Unicode "control picture"; the empty string is ``∅``.

    Examples:
        >>> visible_token(" the\\n")
        '·the⏎'
    """
    return token.translate(_VISIBLE) if token else "∅"


def _as_list(results: Results) -> list[AttributionResult]:
    items = [results] if isinstance(results, AttributionResult) else list(results)
    if not items:
        raise ValueError("no results to show")
    return items


def _check_components(components: Sequence[str]) -> None:
    unknown = [c for c in components if c not in COMPONENTS]
    if unknown:
        raise ValueError(f"unknown component(s) {unknown}; valid: {', '.join(COMPONENTS)}")


def _component(result: AttributionResult, name: str) -> Tensor | None:
    value = getattr(result, "scores" if name == "score" else name, None)
    return value.detach().to("cpu", torch.float64) if isinstance(value, Tensor) else None


def _components(result: AttributionResult, names: Sequence[str]) -> dict[str, Tensor]:
    """The requested components that ``result`` has, in order (``None`` ones left out)."""
    out = {name: _component(result, name) for name in names}
    present = {name: value for name, value in out.items() if value is not None}
    if not present:
        raise ValueError(f"result ({result.method}) has none of the components {list(names)}")
    return present


def _strings(result: AttributionResult) -> list[str]:
    """Strings of all tokens (ids as strings without a tokenizer)."""
    if result.token_strings is None:
        return [str(int(t)) for t in result.tokens]
    return list(result.token_strings)


@typechecked
def colored_tokens_data(
    results: Results, *, components: Sequence[str] = DEFAULT_COMPONENTS
) -> tuple[list[str], Float[Tensor, "pos component"], list[str]]:
    """The ``(tokens, values, labels)`` that :func:`colored_tokens` hands to circuitsvis.

    The tokens are the context plus the target (``pos = target + 1``), made visible with
    :func:`visible_token`; the target gets the :data:`TARGET_MARK` prefix and the value 0 in
    every column (it explains itself with nothing). Values are raw (circuitsvis scales each
    column by its own max/min); non-finite ones become 0.

    A list of results over one growing sequence (the ``--generate`` workflow) is combined into
    one view over the longest prefix: every explained token is marked, there is one column per
    (result, component) labelled ``"score →w9@4"``, and a result's column is 0 from its target on.

    Args:
        results: One result, or several explaining tokens of one sequence.
        components: Names from :data:`COMPONENTS`; those a result lacks are left out.

    Returns:
        Token strings ``[pos]``, float64 values ``[pos, component]`` and column labels.

    Raises:
        ValueError: No results, an unknown component, or results over different sequences.
    """
    items = _as_list(results)
    _check_components(components)
    ref = max(items, key=lambda r: r.target)
    n = ref.target + 1
    ids = ref.tokens[:n].cpu()
    for r in items:
        if not torch.equal(r.tokens[: r.target + 1].cpu(), ids[: r.target + 1]):
            raise ValueError(
                "results explain tokens of different sequences; show them one at a time"
            )
    targets = {r.target for r in items}
    strings = [visible_token(s) for s in _strings(ref)[:n]]
    tokens = [TARGET_MARK + s if i in targets else s for i, s in enumerate(strings)]
    columns: list[Tensor] = []
    labels: list[str] = []
    for r in items:
        for name, value in _components(r, components).items():
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
    renders offline use :func:`save_html` (circuitsvis loads its JavaScript from a CDN when
    online).

    Args:
        results: One result, or several explaining tokens of one sequence.
        components: Names from :data:`COMPONENTS`; those a result lacks are left out.

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


def _normalise(values: Tensor) -> list[float]:
    """Divide by the largest magnitude (0 stays white; signed values map to [-1, 1])."""
    finite = torch.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    scale = float(finite.abs().max()) if finite.numel() else 0.0
    return (finite / scale).tolist() if scale > 0 else [0.0] * finite.numel()


def _style(v: float) -> str:
    """Background white→red (white→blue for negative ``v``); white text on dark cells."""
    a = min(abs(v), 1.0)
    r, g, b = (round(255 + (c - 255) * a) for c in (_POSITIVE if v >= 0 else _NEGATIVE))
    return f"background:rgb({r},{g},{b});color:{'#fff' if a > 0.6 else '#111'}"


def _fmt(v: float) -> str:
    return f"{v:.4g}" if math.isfinite(v) else "n/a"


def _token_spans(result: AttributionResult, comps: dict[str, Tensor]) -> str:
    norms = {name: _normalise(value) for name, value in comps.items()}
    first = next(iter(norms))
    strings = _strings(result)
    spans = []
    for pos in range(result.target):
        tip = "\n".join([f"pos {pos}", *(f"{k} = {_fmt(float(v[pos]))}" for k, v in comps.items())])
        data = "".join(f' data-{k}="{n[pos]:.4f}"' for k, n in norms.items())
        style = _style(norms[first][pos])
        spans.append(
            f'<span class="tok" title="{html.escape(tip)}"{data} style="{style}">'
            f"{html.escape(visible_token(strings[pos]))}</span>"
        )
    tip = f"pos {result.target} (target)\nlog p = {_fmt(result.target_log_prob)}"
    spans.append(
        f'<span class="tok target" title="{html.escape(tip)}">'
        f"{html.escape(visible_token(strings[result.target]))}</span>"
    )
    return "".join(spans)


def _top_table(result: AttributionResult, comps: dict[str, Tensor], top_k: int) -> str:
    norms = {name: _normalise(value) for name, value in comps.items()}
    head = "".join(f"<th>{html.escape(name)}</th>" for name in comps)
    rows = []
    for rank, (pos, string, _) in enumerate(result.top(top_k), start=1):
        cells = "".join(
            f'<td style="{_style(norms[k][pos])}">{_fmt(float(v[pos]))}</td>'
            for k, v in comps.items()
        )
        token = html.escape(visible_token(string))
        rows.append(f'<tr><td>{rank}</td><td>{pos}</td><td class="t">{token}</td>{cells}</tr>')
    return (
        f'<table><thead><tr><th>#</th><th>pos</th><th class="t">token</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _section(result: AttributionResult, components: Sequence[str], top_k: int) -> str:
    comps = _components(result, components)
    first = next(iter(comps))
    buttons = "".join(
        f'<button type="button" data-comp="{k}" data-max="{_fmt(float(v.abs().max()))}"'
        f"{' class=on' if k == first else ''}>{k}</button>"
        for k, v in comps.items()
    )
    target = html.escape(visible_token(_strings(result)[result.target]))
    p = _fmt(math.exp(result.target_log_prob))
    return (
        f'<section class="heta"><h2>Target <span class="tgt">{target}</span> at position '
        f"{result.target} · p = {p} <small>log p = {_fmt(result.target_log_prob)} · "
        f"{html.escape(result.method)}</small></h2>"
        f'<div class="bar">{buttons} <span class="scale">max |value| = '
        f'<span class="max">{_fmt(float(comps[first].abs().max()))}</span></span></div>'
        f'<div class="toks">{_token_spans(result, comps)}</div>'
        f"{_top_table(result, comps, top_k)}</section>"
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


_CSS = """
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

_JS = """
(function () {
  function heat(v) {
    var a = Math.min(Math.abs(v), 1), c = v >= 0 ? [220, 38, 38] : [37, 99, 235];
    return "rgb(" + c.map(function (x) { return Math.round(255 + (x - 255) * a); }) + ")";
  }
  document.querySelectorAll("section.heta").forEach(function (sec) {
    var buttons = sec.querySelectorAll("button[data-comp]");
    buttons.forEach(function (btn) {
      btn.addEventListener("click", function () {
        var comp = btn.getAttribute("data-comp");
        buttons.forEach(function (b) { b.classList.toggle("on", b === btn); });
        sec.querySelectorAll(".tok:not(.target)").forEach(function (t) {
          var v = parseFloat(t.getAttribute("data-" + comp) || "0");
          t.style.background = heat(v);
          t.style.color = Math.min(Math.abs(v), 1) > 0.6 ? "#fff" : "#111";
        });
        sec.querySelector(".max").textContent = btn.getAttribute("data-max");
      });
    });
  });
})();
"""


@typechecked
def to_html(
    results: Results,
    *,
    components: Sequence[str] = DEFAULT_COMPONENTS,
    top_k: int = 10,
    title: str | None = None,
) -> str:
    """A self-contained HTML page (no network needed) showing one or more attributions.

    One section per result: the target token and p = exp(``target_log_prob``), a switcher over
    the components, the context tokens coloured by the selected one (each component divided by
    its largest magnitude: white = 0, red = max, blue for negative values), the target outlined,
    tooltips with the position and every component, and the ``top_k`` tokens by score. The
    results' :meth:`~heta_lens.AttributionResult.to_dict` are embedded as JSON (NaN → null).

    Args:
        results: One result or a list (one section each, e.g. per generated token).
        components: Names from :data:`COMPONENTS`; those a result lacks are left out.
        top_k: Rows of the ranked table.
        title: Page title (default: names the method and number of results).

    Returns:
        The page, inline CSS and JS only.

    Raises:
        ValueError: No results or an unknown component.

    Examples:
        >>> import torch
        >>> from heta_lens import attribute
        >>> from heta_lens.testing import tiny_bridge
        >>> page = to_html(attribute(tiny_bridge(), torch.tensor([1, 5, 7, 3, 9])))
        >>> "https://" in page, len(results_from_html(page))
        (False, 1)
    """
    items = _as_list(results)
    _check_components(components)
    methods = ", ".join(dict.fromkeys(r.method for r in items))
    what = f"{len(items)} {methods} attributions" if len(items) > 1 else f"{methods} attribution"
    title = title if title is not None else f"heta-lens · {what}"
    sections = "\n".join(_section(r, components, top_k) for r in items)
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
        if data.get("target_log_prob") is None:
            data["target_log_prob"] = float("nan")
        out.append(from_dict(data))
    return out
