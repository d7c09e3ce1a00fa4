"""Gradient baselines on the input embeddings: saliency, input × gradient, integrated gradients.

Every method explains the scalar f(E) = log P(x_T | x_<T) — or, for a
:class:`~heta_lens.targets.Contrast`, :class:`~heta_lens.targets.Span` or
:class:`~heta_lens.targets.Metric` target, that target's f — with E ∈ R^{ctx×d_model} the
input embeddings of the prefix x_<T (the output of the embedding table, as at ``hook_embed``;
positional information is added downstream, so it is not attributed). f on a batch of b
embedding matrices is :func:`~heta_lens.methods.common.log_prob_fn`: ``hook_embed`` replaced
through the adapter. Captum (``Saliency``, ``InputXGradient``, ``IntegratedGradients``)
computes the per-dimension attributions ``[ctx, d_model]`` of f; each method then aggregates
them over ``d_model`` (:func:`aggregate_dims`). Captum is used rather than our own loops
because it is as fast and gives the same numbers on our models (``benchmarks/RESULTS.md``).
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal, get_args

import torch
from jaxtyping import Float
from torch import Tensor, nn

from heta_lens._typing import TokensLike, typechecked
from heta_lens.hooks import ModelAdapter
from heta_lens.inputs import Prepared
from heta_lens.methods.common import (
    ALL_KINDS,
    EmbedsFn,
    log_prob_fn,
    prefix_embeddings,
    run_baseline,
)
from heta_lens.registry import MethodSpec
from heta_lens.result import AttributionResult
from heta_lens.targets import TargetLike

Aggregate = Literal["l2", "sum"]
IGMethod = Literal[
    "gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"
]
IGBaseline = Literal["zero", "mean"]


def _check_aggregate(aggregate: str) -> None:
    if aggregate not in get_args(Aggregate):
        raise ValueError(f"aggregate must be one of {get_args(Aggregate)}; got {aggregate!r}")


@dataclass(frozen=True, kw_only=True)
class SaliencyConfig:
    """Saliency: ``"l2"`` = ‖∂f/∂E_i‖₂ (Inseq's default), ``"sum"`` = Σ_d |∂f/∂E_id| (Captum)."""

    aggregate: Aggregate = "l2"

    def __post_init__(self) -> None:
        _check_aggregate(self.aggregate)


@dataclass(frozen=True, kw_only=True)
class InputXGradientConfig:
    """Input × gradient: ``"l2"`` = ‖E_i ⊙ g_i‖₂, ``"sum"`` = Σ_d E_id g_id (signed)."""

    aggregate: Aggregate = "l2"

    def __post_init__(self) -> None:
        _check_aggregate(self.aggregate)


@dataclass(frozen=True, kw_only=True)
class IntegratedGradientsConfig:
    """Integrated gradients along the straight path from a baseline E' to E.

    Attributes:
        n_steps: Quadrature nodes (≥ 1; ≥ 2 for the Riemann rules, as in Captum).
        method: Captum's quadrature rule.
        baseline: ``"zero"`` (E' = 0) or ``"mean"`` (every row of E' is the vocabulary-mean
            embedding).
        internal_batch_size: Path points per forward (results do not depend on it).
        aggregate: ``"l2"`` = norm over ``d_model``; ``"sum"`` = signed sum (Captum-style,
            so Σ_i score_i ≈ f(E) − f(E')).

    On RMSNorm models f is steep near E' = 0 (RMSNorm of α·E varies on α ~ √eps / rms(E)),
    and attention sinks make it jump along the path: 32 steps can be far from complete
    (SmolLM2-135M, 14 tokens: Σ "sum" scores 15.6 vs f(E) − f(0) = 10.7). Check the gap.
    """

    n_steps: int = 32
    method: IGMethod = "gausslegendre"
    baseline: IGBaseline = "zero"
    internal_batch_size: int = 16
    aggregate: Aggregate = "l2"

    def __post_init__(self) -> None:
        _check_aggregate(self.aggregate)
        if self.method not in get_args(IGMethod):
            raise ValueError(f"method must be one of {get_args(IGMethod)}; got {self.method!r}")
        if self.baseline not in get_args(IGBaseline):
            raise ValueError(f"baseline must be 'zero' or 'mean'; got {self.baseline!r}")
        least = 1 if self.method == "gausslegendre" else 2
        if self.n_steps < least:
            raise ValueError(f"n_steps must be >= {least} for {self.method}; got {self.n_steps}")
        if self.internal_batch_size < 1:
            raise ValueError(f"internal_batch_size must be >= 1; got {self.internal_batch_size}")


@typechecked
def aggregate_dims(
    attributions: Float[Tensor, "ctx d_model"], *, aggregate: Aggregate
) -> Float[Tensor, " ctx"]:
    """Per-token score from per-dimension attributions: L2 norm (``"l2"``) or sum (``"sum"``)."""
    _check_aggregate(aggregate)
    return attributions.norm(dim=-1) if aggregate == "l2" else attributions.sum(dim=-1)


def _leaf(adapter: ModelAdapter, req: Prepared) -> Float[Tensor, "1 ctx d_model"]:
    """E as a batch of one that requires grad (Captum warns when it has to set the flag)."""
    return prefix_embeddings(adapter, req)[None].requires_grad_(True)


@typechecked
def saliency_dims(adapter: ModelAdapter, req: Prepared) -> Float[Tensor, "ctx d_model"]:
    """|∂f/∂E| per dimension: ``captum.attr.Saliency`` (``abs=True``) on f."""
    from captum.attr import Saliency

    attr = Saliency(log_prob_fn(adapter, req)).attribute(_leaf(adapter, req), abs=True)
    return attr[0].detach()


@typechecked
def input_x_gradient_dims(adapter: ModelAdapter, req: Prepared) -> Float[Tensor, "ctx d_model"]:
    """E ⊙ ∂f/∂E per dimension: ``captum.attr.InputXGradient`` on f."""
    from captum.attr import InputXGradient

    attr = InputXGradient(log_prob_fn(adapter, req)).attribute(_leaf(adapter, req))
    return attr[0].detach()


@typechecked
def quadrature(n_steps: int, method: IGMethod) -> tuple[Tensor, Tensor]:
    """Captum's ``(step_sizes, alphas)`` for ``method``, as float64 tensors ``[n_steps]``.

    The table :func:`integrated_gradients_dims` integrates with, read from
    ``captum.attr._utils.approximation_methods``. Gauss–Legendre: numpy's nodes and weights
    rescaled to [0, 1]; Riemann rules: alphas from a float32 ``torch.linspace``, steps 1/n
    (``riemann_trapezoid`` halves the first and last, so its weights sum to (n−1)/n). Captum
    casts the step sizes to float32 before weighting the gradients, so they are returned
    rounded to float32 (relative error ≤ 2⁻²⁴ per weight).
    """
    from captum.attr._utils.approximation_methods import approximation_parameters

    steps_fn, alphas_fn = approximation_parameters(method)
    steps = torch.tensor(steps_fn(n_steps), dtype=torch.float64).float().double()
    return steps, torch.tensor(alphas_fn(n_steps), dtype=torch.float64)


def batch_gradients(
    f: EmbedsFn, embeds: Float[Tensor, "batch ctx d_model"]
) -> Float[Tensor, "batch ctx d_model"]:
    """∂f(E_b)/∂E_b for every matrix of the batch (f acts on each row independently)."""
    with torch.enable_grad():
        x = embeds.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(f(x).sum(), x)
    return grad


@typechecked
def path_integrated_gradients(
    f: EmbedsFn,
    embeds: Float[Tensor, "ctx d_model"],
    baseline: Float[Tensor, "ctx d_model"],
    *,
    step_sizes: Float[Tensor, " n_steps"],
    alphas: Float[Tensor, " n_steps"],
    internal_batch_size: int,
) -> Float[Tensor, "ctx d_model"]:
    """(E − E') ⊙ Σ_k w_k ∇f(E' + α_k (E − E')), ``internal_batch_size`` path points a forward.

    IG with caller-given weights kept in the embeddings' dtype: the exact-quadrature check of
    completeness (Σ of the result → f(E) − f(E')). Not what the registered method runs
    (:func:`integrated_gradients_dims`, Captum): Captum rounds every weight to float32.
    """
    delta = embeds - baseline
    total = torch.zeros_like(embeds)
    for start in range(0, alphas.numel(), internal_batch_size):
        a = alphas[start : start + internal_batch_size].to(embeds)
        w = step_sizes[start : start + internal_batch_size].to(embeds)
        path = baseline[None] + a[:, None, None] * delta[None]
        total = total + (w[:, None, None] * batch_gradients(f, path)).sum(dim=0)
    return total * delta


@typechecked
def integrated_gradients_dims(
    adapter: ModelAdapter, req: Prepared, *, config: IntegratedGradientsConfig
) -> Float[Tensor, "ctx d_model"]:
    """Per-dimension IG attributions: ``captum.attr.IntegratedGradients`` on f, same options."""
    from captum.attr import IntegratedGradients

    embeds = prefix_embeddings(adapter, req)
    if config.baseline == "zero":
        baseline = torch.zeros_like(embeds)
    else:
        baseline = adapter.mean_embedding().expand_as(embeds)
    attr = IntegratedGradients(log_prob_fn(adapter, req)).attribute(
        embeds[None],
        baselines=baseline[None],
        n_steps=config.n_steps,
        method=config.method,
        internal_batch_size=config.internal_batch_size,
    )
    return attr[0].detach()


@typechecked
def saliency(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: TargetLike = None,
    config: SaliencyConfig | None = None,
) -> AttributionResult:
    """Gradient saliency (Simonyan et al. 2014) on input embeddings.

    score_i = ‖g_i‖₂ (``"l2"``) or Σ_d |g_id| (``"sum"``), g = ∂ log P(x_T | x_<T) / ∂E.

    Raises:
        TypeError, ValueError: Bad model, tokens or target (see :func:`run_baseline`).

    Examples:
        >>> import torch
        >>> from heta_lens.testing import tiny_bridge
        >>> saliency(tiny_bridge(), torch.tensor([1, 5, 7, 3]), target=3).scores.shape
        torch.Size([3])
    """
    cfg = config or SaliencyConfig()
    return _aggregated(model, tokens, target, "saliency", saliency_dims, cfg.aggregate)


@typechecked
def input_x_gradient(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: TargetLike = None,
    config: InputXGradientConfig | None = None,
) -> AttributionResult:
    """Input × gradient (Shrikumar et al. 2016) on input embeddings.

    score_i = ‖E_i ⊙ g_i‖₂ (``"l2"``, non-negative) or E_i · g_i (``"sum"``, signed).

    Raises:
        TypeError, ValueError: Bad model, tokens or target (see :func:`run_baseline`).
    """
    cfg = config or InputXGradientConfig()
    return _aggregated(
        model, tokens, target, "input_x_gradient", input_x_gradient_dims, cfg.aggregate
    )


@typechecked
def integrated_gradients(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: TargetLike = None,
    config: IntegratedGradientsConfig | None = None,
) -> AttributionResult:
    """Integrated gradients (Sundararajan et al. 2017) on input embeddings, as Captum computes.

    IG_id = (E − E')_id · Σ_k w_k ∂f/∂E_id at E' + α_k (E − E'), with Captum's (w, α) for
    ``config.method`` (:func:`quadrature`); score_i aggregates IG_i over ``d_model``.

    Raises:
        TypeError, ValueError: Bad model, tokens or target (see :func:`run_baseline`).
    """
    cfg = config or IntegratedGradientsConfig()
    dims = partial(integrated_gradients_dims, config=cfg)
    return _aggregated(model, tokens, target, "integrated_gradients", dims, cfg.aggregate)


def _aggregated(
    model: nn.Module,
    tokens: TokensLike,
    target: TargetLike,
    method: str,
    dims: Callable[[ModelAdapter, Prepared], Tensor],
    aggregate: Aggregate,
) -> AttributionResult:
    """A gradient method's per-dimension attributions aggregated over ``d_model``; signed
    exactly when the aggregate is the plain sum."""
    return run_baseline(
        model,
        tokens,
        target=target,
        method=method,
        score_fn=lambda adapter, req: aggregate_dims(dims(adapter, req), aggregate=aggregate),
        signed=aggregate == "sum",
        kinds=ALL_KINDS,
    )


METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(
        name="saliency",
        fn=saliency,
        default_config=SaliencyConfig(),
        description="L2 norm of ∂log P(target)/∂ input embedding, per token",
    ),
    MethodSpec(
        name="input_x_gradient",
        fn=input_x_gradient,
        default_config=InputXGradientConfig(),
        description="L2 norm of input embedding ⊙ gradient, per token",
    ),
    MethodSpec(
        name="integrated_gradients",
        fn=integrated_gradients,
        default_config=IntegratedGradientsConfig(),
        description="Integrated gradients from a zero embedding (32 Gauss-Legendre steps), L2",
    ),
)
