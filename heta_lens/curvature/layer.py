"""Layer-restricted curvature (HETA-LS): eq. 3 w.r.t. the residual stream entering layer L − k."""

import torch
from jaxtyping import Float
from torch import Tensor, nn

from heta_lens._typing import TokensLike, typechecked
from heta_lens.config import HvpStrategy, LayerSampled
from heta_lens.curvature.base import (
    CurvatureJob,
    curvature_on_request,
    estimate,
    estimate_interactions,
)
from heta_lens.curvature.exact import block_curvature, block_interactions
from heta_lens.curvature.hvp import HvpOperator, objective_point, target_log_prob_fn
from heta_lens.hooks import ModelAdapter, names
from heta_lens.inputs import Prepared
from heta_lens.objective import BatchedScalarFn, MetricObjective, Objective
from heta_lens.targets import TargetLike


def curvature_layer(n_layers: int, k: int) -> int:
    """The block L − k whose incoming residual stream HETA-LS differentiates, k clipped to L.

    Raises:
        ValueError: ``k`` < 1 (there is no residual stream to take after the last block).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1 (curvature through the last k layers); got {k}")
    return n_layers - min(k, n_layers)


def resid_log_prob_fn(adapter: ModelAdapter, req: Prepared, layer: int) -> BatchedScalarFn:
    """g(Z) = log P(x_target | Z) (the request's f in general), Z replacing the context rows of
    the residual stream entering block ``layer``."""
    return target_log_prob_fn(adapter, req, at_layer=layer)


@typechecked
def layer_curvature(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: TargetLike = None,
    k: int = 4,
    n_probes: int = 8,
    probes: Float[Tensor, "m ctx d_model"] | None = None,
    generator: torch.Generator | None = None,
    chunk_size: int = 32,
    strategy: HvpStrategy = "batched_grad",
) -> Float[Tensor, " ctx"]:
    """Curvature through the last k layers only (HETA-LS).

    Eq. 3 with the input embeddings replaced by Z = the residual stream entering block
    l = L − k (``blocks.{l}.hook_resid_pre``), L = n_layers and k clipped to [1, L]:

        S_i^LS = (1/m) Σ_k ‖Π_i H^Z Π_i r_k‖₁,   H^Z = ∇²_Z log P(x_target | Z),

    the upstream layers held fixed at their values for these tokens. Same Rademacher probes
    as eq. 3 (Z has d_model columns too), ctx·m HVPs whose backward passes traverse only the
    last k blocks (the forward still runs every block). With k ≥ L,
    Z = resid_pre of block 0 = the embeddings plus a constant (learned positions) or nothing
    (rotary), so the Hessian, and the result, equal eq. 3 with the same probes.

    Args:
        model: A ``HookedTransformer`` or ``TransformerBridge``.
        tokens: Token ids containing the target, or a string.
        target: Index of the explained token (default: last), or a target whose f is
            differentiated instead (:mod:`heta_lens.targets`).
        k: Number of final layers the curvature is taken through (paper: 4..6); clipped to L.
        n_probes: m, used when ``probes`` is None.
        probes: Explicit probes ``[m, ctx, d_model]``.
        generator: Source of Rademacher probes (default: a generator seeded with 0).
        chunk_size: HVPs per batched double backward.
        strategy: HVP strategy (:func:`heta_lens.curvature.hvp.hessian_vector_products`).

    Returns:
        S^LS, shape ``[ctx]``, non-negative.

    Raises:
        ValueError: Bad tokens/target, ``k`` < 1, or ``probes`` of the wrong shape.
        TypeError: Non-floating ``probes``.

    Examples:
        >>> from heta_lens.testing import tiny_bridge
        >>> s = layer_curvature(tiny_bridge(), torch.tensor([1, 5, 7, 3]), k=1, n_probes=2)
        >>> s.shape, bool((s >= 0).all())
        (torch.Size([3]), True)
    """
    return curvature_on_request(
        model,
        tokens,
        LayerSampled(k=k, n_probes=n_probes),
        target=target,
        probes=probes,
        generator=generator,
        chunk_size=chunk_size,
        strategy=strategy,
    )


def _operator(spec: LayerSampled, job: CurvatureJob) -> HvpOperator:
    """v ↦ H^Z v, Z the residual stream entering block L − k."""
    layer = curvature_layer(job.adapter.n_layers, spec.k)
    _check_reaches(job.req.goal, layer, job.adapter.n_layers)
    z, fn = objective_point(job.adapter, job.req, at_layer=layer)
    return HvpOperator(fn, z, strategy=job.strategy)


@estimate.register
def _estimate(spec: LayerSampled, job: CurvatureJob) -> Float[Tensor, " ctx"]:
    op = _operator(spec, job)
    return block_curvature(op, job.probes, chunk_size=job.chunk_size, progress=job.progress)


@estimate_interactions.register
def _interactions(spec: LayerSampled, job: CurvatureJob) -> Float[Tensor, "ctx ctx"]:
    op = _operator(spec, job)
    return block_interactions(op, job.probes, chunk_size=job.chunk_size, progress=job.progress)


def _check_reaches(goal: Objective, layer: int, n_layers: int) -> None:
    """A metric read before block ``layer`` does not depend on its residual stream."""
    if isinstance(goal, MetricObjective) and names.hook_block(goal.hook_name, n_layers) < layer:
        raise ValueError(
            f"LayerSampled differentiates the residual stream entering block {layer}, which "
            f"the metric's hook point {goal.hook_name!r} comes before; use a larger k"
        )
