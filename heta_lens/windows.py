"""HETA-WIN (paper appendix): HETA over overlapping windows of a long context.

Windows of W = ``config.window.size`` context tokens start every ``stride = ⌊W·(1 − overlap)⌋``
(at least 1) positions; the last window is aligned to end at the last context token, so every
window has exactly W tokens and their union is the whole context. For each window w the gate is
renormalised over w and the curvature/information terms are normalised over w
(``config.normalization``); each token's terms are then averaged over the windows containing it,

    G'_i = mean_{w ∋ i} G_w[i],
    S'_i = mean_{w ∋ i} norm_w(S)[i],
    I'_i = mean_{w ∋ i} norm_w(I)[i],

and the score is formed from the averaged terms, Attr_i = G'_i · (β·S'_i + γ·I'_i), so the
identity ``scores == gate_term * (β·curvature_term + γ·information_term)`` of
:class:`heta_lens.HetaResult` holds on the windowed result too.

What the model sees per window (:data:`WindowView`):

- ``"prefix"`` (default): always the full prefix x_<T — the prediction explained is the real
  one. S_i (eq. 3's own-block term) and I_i (token i masked in the full prefix) do not depend on
  which window contains i, so they are computed once per token, like plain HETA (ctx·m HVPs of
  length ctx; for the ``"row"`` estimator the cross-token terms span the whole context);
  windows only localise the normalisation of G, S and I. Cost ≈ plain HETA.
- ``"window"``: the model sees only the window, after the context's first token x_0 (the
  anchor: BOS under TransformerLens's convention, and the attention sink in every model we
  measured) and followed by the target, g_w = log P(x_T | x_0, x_s..x_{e-1}). Gate, S and I
  are computed on that input; the anchor's own values are dropped and the gate renormalised
  over the window, so in both views the sink policy concerns x_0 only. Σ_w |w|·m ≈
  ctx·m/(1 − overlap) HVPs, each over W + 1 positions instead of ctx: cheaper once
  ctx > W/(1 − overlap) (2W at the paper's 50% overlap), and the only reading under which
  windows save compute — but every window explains a different, truncated-context prediction.

With a single window covering the context (W ≥ ctx) both views reduce to plain HETA exactly.
``"prefix"`` is the default because it explains the prediction the model actually makes;
``"window"`` is the approximation to reach for when full-length HVPs are unaffordable.
"""

import math
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from heta_lens.config import HetaConfig
from heta_lens.scoring import gate_term, normalize

Span = tuple[int, int]
"""A window ``[start, end)`` of context positions."""


@dataclass(frozen=True, kw_only=True)
class WindowComponents:
    """Raw HETA components of one window, over its own tokens (``None``: switched off).

    Attributes:
        span: The window ``[start, end)`` in context positions.
        gate: Gate values of the window's tokens, ``[win]``.
        curvature: S of the window's tokens, ``[win]``.
        information: I of the window's tokens, ``[win]``.
        own_sink: The window starts at position 0 and so holds the sink x_0: the sink policy
            applies to its first token.
        renormalize_gate: Divide the gate by its sum over the window (it was normalised over a
            larger context: the full prefix, or the window after its anchor).
    """

    span: Span
    gate: Float[Tensor, " win"]
    curvature: Float[Tensor, " win"] | None
    information: Float[Tensor, " win"] | None
    own_sink: bool
    renormalize_gate: bool

    def __post_init__(self) -> None:
        start, end = self.span
        for name in ("gate", "curvature", "information"):
            value = getattr(self, name)
            if value is not None and tuple(value.shape) != (end - start,):
                raise ValueError(f"{name} must have shape [{end - start}] for window {self.span}")


@dataclass(frozen=True, kw_only=True)
class ScoreTerms:
    """The terms that multiply into the score (``None``: switched off); window-averaged for
    HETA-WIN."""

    gate_term: Float[Tensor, " ctx"]
    curvature_term: Float[Tensor, " ctx"] | None
    information_term: Float[Tensor, " ctx"] | None


def window_stride(size: int, overlap: float) -> int:
    """stride = ⌊W·(1 − overlap)⌋, at least 1 (a 1e-9 guard absorbs round-off in the product).

    Raises:
        ValueError: ``size < 1`` or ``overlap`` outside ``[0, 1)``.
    """
    if size < 1:
        raise ValueError(f"window size must be >= 1; got {size}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"window overlap must be in [0, 1); got {overlap}")
    return max(1, math.floor(size * (1.0 - overlap) + 1e-9))


def window_spans(ctx: int, size: int, overlap: float) -> list[Span]:
    """Windows ``[s, s + W)`` at ``s = 0, stride, 2·stride, …``, plus one ending at ``ctx``.

    With ``W >= ctx`` there is one window, ``[0, ctx)``. Otherwise every window has W tokens,
    consecutive windows share at least ``W − stride`` tokens and their union is ``[0, ctx)``.

    Raises:
        ValueError: ``ctx < 1`` or invalid ``size``/``overlap``.

    Examples:
        >>> window_spans(10, 4, 0.5)
        [(0, 4), (2, 6), (4, 8), (6, 10)]
        >>> window_spans(9, 4, 0.5)
        [(0, 4), (2, 6), (4, 8), (5, 9)]
    """
    if ctx < 1:
        raise ValueError(f"ctx must be >= 1; got {ctx}")
    stride = window_stride(size, overlap)
    if size >= ctx:
        return [(0, ctx)]
    starts = list(range(0, ctx - size + 1, stride))
    if starts[-1] + size < ctx:
        starts.append(ctx - size)
    return [(s, s + size) for s in starts]


def window_gate_term(window: WindowComponents, config: HetaConfig) -> Float[Tensor, " win"]:
    """G_w: the gate renormalised over the window, sink policy applied where it is the sink.

    All ones when the gate is switched off (``config.use_gate=False``).
    """
    gate = window.gate
    if not config.use_gate:
        return torch.ones_like(gate)
    if window.renormalize_gate:
        total = gate.sum()
        gate = gate / total if bool(total > 0) else gate
    return gate_term(gate, sink=config.sink if window.own_sink else "keep")


def average_over_windows(
    values: list[Float[Tensor, " win"]], spans: list[Span], ctx: int
) -> Float[Tensor, " ctx"]:
    """Per context position, the mean of ``values[w]`` over the windows w that contain it.

    Raises:
        ValueError: A position no window covers.
    """
    total = torch.zeros(ctx, dtype=values[0].dtype, device=values[0].device)
    count = torch.zeros(ctx, dtype=values[0].dtype, device=values[0].device)
    for value, (start, end) in zip(values, spans, strict=True):
        total[start:end] += value
        count[start:end] += 1
    if bool((count == 0).any()):
        raise ValueError("windows do not cover every context position")
    return total / count


def windowed_terms(windows: list[WindowComponents], ctx: int, config: HetaConfig) -> ScoreTerms:
    """Average the per-window gate, curvature and information terms over the windows.

    G_w from :func:`window_gate_term`; S and I normalised within each window
    (:func:`heta_lens.scoring.normalize` with ``config.normalization``).
    """
    spans = [w.span for w in windows]
    return ScoreTerms(
        gate_term=average_over_windows([window_gate_term(w, config) for w in windows], spans, ctx),
        curvature_term=_normalized_average([w.curvature for w in windows], spans, ctx, config),
        information_term=_normalized_average([w.information for w in windows], spans, ctx, config),
    )


def average_if_present(
    values: list[Float[Tensor, " win"] | None], spans: list[Span], ctx: int
) -> Float[Tensor, " ctx"] | None:
    """:func:`average_over_windows`, or ``None`` when any window lacks the component."""
    present = [v for v in values if v is not None]
    return average_over_windows(present, spans, ctx) if len(present) == len(values) else None


def _normalized_average(
    values: list[Tensor | None], spans: list[Span], ctx: int, config: HetaConfig
) -> Tensor | None:
    how = config.normalization
    return average_if_present(
        [None if v is None else normalize(v, how) for v in values], spans, ctx
    )


def prefix_view_windows(
    gate: Float[Tensor, " ctx"],
    curvature: Float[Tensor, " ctx"] | None,
    information: Float[Tensor, " ctx"] | None,
    spans: list[Span],
) -> list[WindowComponents]:
    """The ``"prefix"`` view: full-prefix components, restricted to each window.

    The gate is renormalised over every window that is not the whole context; only the window
    starting at position 0 holds the model's sink.
    """
    ctx = gate.numel()

    def part(value: Tensor | None, start: int, end: int) -> Tensor | None:
        return None if value is None else value[start:end]

    return [
        WindowComponents(
            span=(start, end),
            gate=gate[start:end],
            curvature=part(curvature, start, end),
            information=part(information, start, end),
            own_sink=start == 0,
            renormalize_gate=(start, end) != (0, ctx),
        )
        for start, end in spans
    ]
