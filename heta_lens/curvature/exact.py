"""Curvature sensitivity S_i (HETA eq. 3): Hutchinson estimate of ‖H_ii r‖₁ per token block."""

import torch
from jaxtyping import Float
from torch import Tensor, nn

from heta_lens._typing import TokensLike, typechecked
from heta_lens.config import Exact, HvpStrategy
from heta_lens.curvature.base import CurvatureJob, curvature_on_request, estimate
from heta_lens.curvature.hvp import HvpOperator, own_block_products
from heta_lens.targets import TargetLike


def block_curvature(
    op: HvpOperator,
    probes: Float[Tensor, "n_probes ctx d_model"],
    *,
    chunk_size: int,
    progress: bool = False,
) -> Float[Tensor, " ctx"]:
    """S_i = (1/m) Σ_k ‖Π_i H Π_i r_k‖₁, evaluated ``chunk_size`` (token, probe) pairs at a time."""
    products = own_block_products(op, probes, chunk_size=chunk_size, progress=progress)
    return products.abs().sum(-1).mean(0)


@typechecked
def curvature_sensitivity(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: TargetLike = None,
    n_probes: int = 8,
    probes: Float[Tensor, "m ctx d_model"] | None = None,
    generator: torch.Generator | None = None,
    chunk_size: int = 32,
    strategy: HvpStrategy = "batched_grad",
) -> Float[Tensor, " ctx"]:
    """Curvature sensitivity S of log P(x_target | prefix) w.r.t. each context token's embedding.

    Implements eq. 3: S_i = (1/m) Σ_k ‖Π_i H (Π_i r_k)‖₁, H the Hessian of
    g(X) = log P(x_target | x_<target) w.r.t. the input embeddings X (``hook_embed``), r_k
    Rademacher vectors on block i. That is the diagonal block H_ii applied to sign vectors:
    ctx·m HVPs, batched over (token, probe) pairs in chunks of ``chunk_size`` (see
    :mod:`heta_lens.curvature.hvp`). H is never formed.

    Args:
        model: A ``HookedTransformer`` or ``TransformerBridge``.
        tokens: Token ids containing the target, or a string.
        target: Index of the explained token (default: last), or a target whose f is
            differentiated instead (:mod:`heta_lens.targets`).
        n_probes: m, used when ``probes`` is None.
        probes: Explicit probes ``[m, ctx, d_model]``; the result is then exactly
            (1/m) Σ_k ‖H_ii probes[k, i]‖₁ (any real entries, not only ±1).
        generator: Source of Rademacher probes (default: a generator seeded with 0, so calls
            are deterministic).
        chunk_size: HVPs per batched double backward.
        strategy: HVP strategy (:func:`heta_lens.curvature.hvp.hessian_vector_products`).

    Returns:
        S, shape ``[ctx]``, non-negative.

    Raises:
        ValueError: Bad tokens/target, or ``probes`` of the wrong shape.
        TypeError: Non-floating ``probes``.

    Examples:
        >>> from heta_lens.testing import tiny_bridge
        >>> s = curvature_sensitivity(tiny_bridge(), torch.tensor([1, 5, 7, 3]), n_probes=2)
        >>> s.shape, bool((s >= 0).all())
        (torch.Size([3]), True)
    """
    return curvature_on_request(
        model,
        tokens,
        Exact(n_probes=n_probes),
        target=target,
        probes=probes,
        generator=generator,
        chunk_size=chunk_size,
        strategy=strategy,
    )


@estimate.register
def _estimate(spec: Exact, job: CurvatureJob) -> Float[Tensor, " ctx"]:
    del spec  # the probe count is already in job.probes
    op = job.embedding_operator()
    return block_curvature(op, job.probes, chunk_size=job.chunk_size, progress=job.progress)
