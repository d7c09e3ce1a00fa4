"""``attribute``: the full HETA attribution of one target token (plain or windowed)."""

from dataclasses import replace

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from heta_lens._typing import TokensLike, typechecked
from heta_lens.components import ComponentCache, Components, target_scalars
from heta_lens.config import HetaConfig, Window, WindowView
from heta_lens.hooks import ModelAdapter, preserved_model_state
from heta_lens.inputs import Prepared
from heta_lens.result import HetaResult
from heta_lens.scoring import combine, gate_term, normalize
from heta_lens.targets import TargetLike, prepare_target
from heta_lens.windows import (
    ScoreTerms,
    Span,
    WindowComponents,
    average_if_present,
    average_over_windows,
    prefix_view_windows,
    window_spans,
    windowed_terms,
)


@typechecked
def attribute(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: TargetLike = None,
    config: HetaConfig | None = None,
    progress: bool = False,
) -> HetaResult:
    """Hessian-Enhanced Token Attribution of ``tokens[target]`` (or any target's scalar f) to
    each earlier token.

    Attr_i = G_i · (β·S'_i + γ·I'_i): G the gate term (:func:`heta_lens.semantic_gate`, sink
    policy applied), S' and I' the normalised curvature (:func:`heta_lens.curvature_sensitivity`)
    and information (:func:`heta_lens.information_gain`). Components switched off in ``config``
    (ablations) are not computed. The curvature probes come from
    ``torch.Generator().manual_seed(config.seed)``, so results are deterministic. When
    ``config.window`` is set and the context is longer, this is HETA-WIN in its default
    ``"prefix"`` view (:func:`windowed_attribute`).

    ``target`` may name another scalar f than a token's log-probability
    (:mod:`heta_lens.targets`): a :class:`~heta_lens.targets.Contrast` (logit difference),
    a :class:`~heta_lens.targets.Span` (teacher-forced continuation) or a
    :class:`~heta_lens.targets.Metric` (a function of one hook point's activation). S is then
    the curvature of f, I its information functional and M the gate rows of its position(s)
    (:mod:`heta_lens.objective`); the result records the kind and f's value.

    On request the result also keeps a look inside: ``HetaConfig(gate_by_head=True)`` the
    gate split by attention head (``gate_by_head``, ``[layer, head_index, ctx]``, summing to
    ``gate``), and ``Exact(interactions=True)`` (or ``LayerSampled``) the curvature's pairwise
    interaction map (``interactions``, ``[ctx, ctx]``, diagonal = ``curvature``), both read off
    the captures and HVPs HETA makes anyway.

    Args:
        model: A ``HookedTransformer`` or ``TransformerBridge``.
        tokens: Token ids ``[pos]``/``[1, pos]`` containing the target, or a string.
        target: Index of the explained token (default: the last; negative counts from the
            end), or a :data:`~heta_lens.targets.TargetLike`.
        config: :class:`HetaConfig` (default: ``HetaConfig()``).
        progress: Show tqdm progress bars for the HVP and masked-rerun loops.

    Returns:
        A :class:`HetaResult`; ``scores`` has one entry per context token.

    Raises:
        TypeError: Unsupported model, non-integer tokens, or a metric whose ``fn`` does not
            return a scalar.
        ValueError: Empty tokens, target 0 or out of range, sequence longer than ``n_ctx``,
            unknown mask scheme, an invalid target (:func:`heta_lens.targets.prepare_target`).

    Examples:
        >>> from heta_lens.testing import tiny_bridge
        >>> result = attribute(tiny_bridge(), torch.tensor([1, 5, 7, 3, 9]))
        >>> result.scores.shape, result.target
        (torch.Size([4]), 4)
    """
    config = config or HetaConfig()
    adapter = ModelAdapter(model)
    req = prepare_target(adapter, tokens, target)
    if config.window is not None and req.target > config.window.size:
        return _windowed(adapter, req, config, view=config.window.view, progress=progress)
    with preserved_model_state(model):
        log_prob, value = target_scalars(adapter, req)
        parts = compute_components(adapter, req, config=config, progress=progress)
    return result_from_components(
        adapter, req, parts, log_prob=log_prob, config=config, value=value
    )


@typechecked
def windowed_attribute(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: TargetLike = None,
    config: HetaConfig | None = None,
    view: WindowView | None = None,
    progress: bool = False,
) -> HetaResult:
    """HETA-WIN: HETA over overlapping windows of ``config.window.size`` context tokens.

    Windows overlap by ``config.window.overlap`` (:func:`heta_lens.windows.window_spans`); per
    window the gate is renormalised and S, I normalised, and each token's terms are averaged
    over the windows containing it: G'_i = mean_{w∋i} G_w[i], S'_i = mean_{w∋i} norm_w(S)[i],
    I'_i = mean_{w∋i} norm_w(I)[i]; Attr_i = G'_i · (β·S'_i + γ·I'_i). ``gate_term``,
    ``curvature_term`` and ``information_term`` of the result are G', S', I'. The raw fields
    are the full-prefix components (``"prefix"`` view) or their per-token means over windows
    (``"window"`` view; the gate then no longer sums to 1). ``gate_by_head`` and the curvature
    interactions are full-prefix outputs, kept in the ``"prefix"`` view and refused in the
    ``"window"`` view. ``target_log_prob`` is always the
    full-prefix prediction. See :mod:`heta_lens.windows` for the two views and their costs.

    Args:
        model: A ``HookedTransformer`` or ``TransformerBridge``.
        tokens: Token ids containing the target, or a string.
        target: Index of the explained token (default: the last), or a target
            (:mod:`heta_lens.targets`; the ``"window"`` view takes token targets only).
        config: :class:`HetaConfig`; ``window=None`` means one window over the whole context.
        view: ``"prefix"`` (the model always sees the full prefix) or ``"window"`` (the model
            sees each window followed by the target); default ``config.window.view``
            (``"prefix"`` without windows).
        progress: Show tqdm progress bars.

    Returns:
        A :class:`HetaResult`; with one window covering the context it equals
        :func:`attribute` without a window exactly.

    Raises:
        TypeError: Unsupported model or non-integer tokens.
        ValueError: As :func:`attribute`, an unknown ``view``, or the ``"window"`` view with
            ``gate_by_head`` or curvature interactions.

    Examples:
        >>> from heta_lens.testing import tiny_bridge
        >>> from heta_lens.config import Exact, Window
        >>> config = HetaConfig(curvature=Exact(n_probes=1), window=Window(size=4, overlap=0.5))
        >>> ids = torch.tensor([1, 5, 7, 3, 9, 11, 4, 8])
        >>> windowed_attribute(tiny_bridge(), ids, config=config, view="window").scores.shape
        torch.Size([7])
    """
    config = config or HetaConfig()
    if view is None:
        view = "prefix" if config.window is None else config.window.view
    if view not in ("prefix", "window"):
        raise ValueError(f"unknown window view {view!r}; valid: prefix, window")
    adapter = ModelAdapter(model)
    return _windowed(adapter, prepare_target(adapter, tokens, target), config, view, progress)


def compute_components(
    adapter: ModelAdapter, req: Prepared, *, config: HetaConfig, progress: bool = False
) -> Components:
    """Raw M, S, I of a validated request (inside the state guard); disabled ones are skipped."""
    return ComponentCache(adapter, req, progress=progress).components(config)


def result_from_components(
    adapter: ModelAdapter,
    req: Prepared,
    parts: Components,
    *,
    log_prob: float,
    config: HetaConfig,
    value: float | None = None,
) -> HetaResult:
    """Combine raw components into a (non-windowed) :class:`HetaResult` as ``config`` says.

    ``parts`` may hold components ``config`` switches off (they are then ignored), so one
    set of components serves every ablation that shares them (the eval runner does this).
    """
    terms = ScoreTerms(
        gate_term=(
            gate_term(parts.gate, sink=config.sink)
            if config.use_gate
            else torch.ones_like(parts.gate)
        ),
        curvature_term=_normalized(parts.curvature if config.use_curvature else None, config),
        information_term=_normalized(parts.information if config.use_information else None, config),
    )
    kept = Components(
        gate=parts.gate,
        curvature=parts.curvature if config.use_curvature else None,
        information=parts.information if config.use_information else None,
        gate_by_head=parts.gate_by_head if config.gate_by_head else None,
        interactions=parts.interactions if config.interactions else None,
    )
    return _result(adapter, req, kept, terms, log_prob, config, value)


def _windowed(
    adapter: ModelAdapter, req: Prepared, config: HetaConfig, view: WindowView, progress: bool
) -> HetaResult:
    ctx = req.target
    if view == "window" and req.objective is not None and req.goal.kind != "token":
        raise ValueError(
            f"the 'window' view runs each window followed by the target token; a "
            f"{req.goal.kind} target needs the 'prefix' view"
        )
    if view == "window" and (config.gate_by_head or config.interactions):
        raise ValueError(
            "gate_by_head and curvature interactions are full-prefix outputs; the 'window' "
            "view computes each window on its own input: use the 'prefix' view"
        )
    window = config.window or Window(size=ctx)
    spans = window_spans(ctx, window.size, window.overlap)
    with preserved_model_state(adapter.model):
        log_prob, value = target_scalars(adapter, req)
        if view == "prefix":
            parts = compute_components(adapter, req, config=config, progress=progress)
            windows = prefix_view_windows(parts.gate, parts.curvature, parts.information, spans)
        else:
            windows = _window_view_windows(adapter, req, config, spans, progress)
            parts = _mean_components(windows, ctx)
    terms = windowed_terms(windows, ctx, config)
    return _result(adapter, req, parts, terms, log_prob, config, value)


def _window_view_windows(
    adapter: ModelAdapter,
    req: Prepared,
    config: HetaConfig,
    spans: list[Span],
    progress: bool,
) -> list[WindowComponents]:
    """Components of each window seen alone (after the anchor x_0) and followed by the target.

    Window k's curvature probes are seeded with ``config.seed + k``.
    """
    out = []
    for k, (start, end) in enumerate(tqdm(spans, desc="windows", disable=not progress)):
        anchored = start > 0
        context = req.prefix[start:end]
        if anchored:
            context = torch.cat([req.prefix[:1], context])
        sub = Prepared(
            tokens=torch.cat([context, req.tokens[req.target : req.target + 1]]),
            target=int(context.numel()),
            prefix=context,
            target_id=req.target_id,
        )
        parts = compute_components(adapter, sub, config=replace(config, seed=config.seed + k))
        skip = int(anchored)
        out.append(
            WindowComponents(
                span=(start, end),
                gate=parts.gate[skip:],
                curvature=None if parts.curvature is None else parts.curvature[skip:],
                information=None if parts.information is None else parts.information[skip:],
                own_sink=not anchored,
                renormalize_gate=anchored,
            )
        )
    return out


def _mean_components(windows: list[WindowComponents], ctx: int) -> Components:
    """Raw components averaged per token over the windows containing it."""
    spans = [w.span for w in windows]
    return Components(
        gate=average_over_windows([w.gate for w in windows], spans, ctx),
        curvature=average_if_present([w.curvature for w in windows], spans, ctx),
        information=average_if_present([w.information for w in windows], spans, ctx),
    )


def _normalized(values: Tensor | None, config: HetaConfig) -> Tensor | None:
    return None if values is None else normalize(values, config.normalization)


def _result(
    adapter: ModelAdapter,
    req: Prepared,
    parts: Components,
    terms: ScoreTerms,
    log_prob: float,
    config: HetaConfig,
    value: float | None = None,
) -> HetaResult:
    scores = combine(
        terms.gate_term,
        terms.curvature_term,
        terms.information_term,
        beta=config.beta,
        gamma=config.gamma,
        mix=config.mix,
    )
    strings = adapter.to_str_tokens(req.tokens)
    return HetaResult(
        tokens=req.tokens,
        target=req.target,
        scores=scores,
        method="heta",
        token_strings=None if strings is None else tuple(strings),
        target_log_prob=log_prob,
        gate=parts.gate,
        gate_term=terms.gate_term,
        curvature=parts.curvature,
        information=parts.information,
        curvature_term=terms.curvature_term,
        information_term=terms.information_term,
        gate_by_head=parts.gate_by_head,
        interactions=parts.interactions,
        config=config,
        target_kind=req.goal.kind,
        target_description=req.goal.description,
        target_value=log_prob if value is None else value,
    )
