"""Curvature sensitivity S_i (HETA eq. 3): Hutchinson estimate of ‖H_ii r‖₁ per token block.

The same block HVPs H Π_j r_{k,j} hold Π_i H Π_j r_{k,j} for every block i: kept, they give
the pairwise interaction map X[i, j] = (1/m) Σ_k ‖Π_i H Π_j r_{k,j}‖₁ with diagonal S, at no
extra HVP (:func:`curvature_interactions`; ``Exact(interactions=True)`` in a config).
"""

import torch
from jaxtyping import Float
from torch import Tensor, nn

from heta_lens._typing import TokensLike, typechecked
from heta_lens.config import Curvature, Exact, HvpStrategy
from heta_lens.curvature.base import (
    CurvatureJob,
    curvature_on_request,
    estimate,
    estimate_interactions,
    interactions_of,
)
from heta_lens.curvature.hvp import HvpOperator, cross_block_norms, own_block_products
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


def block_interactions(
    op: HvpOperator,
    probes: Float[Tensor, "n_probes ctx d_model"],
    *,
    chunk_size: int,
    progress: bool = False,
) -> Float[Tensor, "ctx ctx"]:
    """X[i, j] = (1/m) Σ_k ‖Π_i H Π_j r_k‖₁ from the ctx·m HVPs of :func:`block_curvature`
    (its diagonal is S)."""
    norms = cross_block_norms(op, probes, chunk_size=chunk_size, progress=progress)
    return norms.mean(0).T  # norms[k, j, i]: probe block j, row block i


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


@estimate_interactions.register
def _interactions(spec: Exact, job: CurvatureJob) -> Float[Tensor, "ctx ctx"]:
    del spec
    op = job.embedding_operator()
    return block_interactions(op, job.probes, chunk_size=job.chunk_size, progress=job.progress)


@typechecked
def curvature_interactions(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: TargetLike = None,
    estimator: Curvature | None = None,
    probes: Float[Tensor, "m ctx d_model"] | None = None,
    generator: torch.Generator | None = None,
    chunk_size: int = 32,
    strategy: HvpStrategy = "batched_grad",
) -> Float[Tensor, "ctx ctx"]:
    """The pairwise curvature (interaction) map of f w.r.t. the context tokens' embeddings.

        X[i, j] = (1/m) Σ_k ‖Π_i H Π_j r_{k,j}‖₁ = (1/m) Σ_k ‖H_ij r_{k,j}‖₁,

    H the Hessian of g(X) = log P(x_target | x_<target) (or a target's f) w.r.t. the input
    embeddings, r_k Rademacher probes. Row i is the token whose gradient moves, column j the
    probed token. The diagonal is eq. 3's S (:func:`heta_lens.curvature_sensitivity`, same
    probes); the HVPs are eq. 3's own (ctx·m): the HVP of probe k on block j is H Π_j r_{k,j},
    whose block i is H_ij r_{k,j}, and eq. 3 keeps only i = j. H is symmetric, but X need not
    be: X[i, j] measures H_ij on block j's probes, X[j, i] its transpose on block i's.

    With ``estimator=LayerSampled(k=...)`` the map is taken w.r.t. the residual stream entering
    block L − k instead (:func:`heta_lens.layer_curvature`; same HVPs as HETA-LS). The
    row-block and low-rank estimators cannot give it (their HVPs do not separate the blocks).

    Args:
        model: A ``HookedTransformer`` or ``TransformerBridge``.
        tokens: Token ids containing the target, or a string.
        target: Index of the explained token (default: last), or a target whose f is
            differentiated instead (:mod:`heta_lens.targets`).
        estimator: :class:`~heta_lens.config.Exact` (default, ``n_probes`` = m) or
            :class:`~heta_lens.config.LayerSampled`.
        probes: Explicit probes ``[m, ctx, d_model]`` (the result is then exactly
            (1/m) Σ_k ‖H_ij probes[k, j]‖₁).
        generator: Source of Rademacher probes (default: a generator seeded with 0).
        chunk_size: HVPs per batched double backward.
        strategy: HVP strategy (:func:`heta_lens.curvature.hvp.hessian_vector_products`).

    Returns:
        X, shape ``[ctx, ctx]``, non-negative.

    Raises:
        ValueError: Bad tokens/target, ``probes`` of the wrong shape, or an estimator that
            cannot give the map (:class:`~heta_lens.config.RowBlock`,
            :class:`~heta_lens.config.LowRank`).
        TypeError: Non-floating ``probes``.

    Examples:
        >>> from heta_lens.testing import tiny_bridge
        >>> ids = torch.tensor([1, 5, 7, 3])
        >>> x = curvature_interactions(tiny_bridge(), ids, estimator=Exact(n_probes=2))
        >>> s = curvature_sensitivity(tiny_bridge(), ids, n_probes=2)
        >>> x.shape, torch.allclose(x.diagonal(), s, rtol=1e-12, atol=0)
        (torch.Size([3, 3]), True)
    """
    return curvature_on_request(
        model,
        tokens,
        Exact() if estimator is None else estimator,
        target=target,
        probes=probes,
        generator=generator,
        chunk_size=chunk_size,
        strategy=strategy,
        of=interactions_of,
    )
