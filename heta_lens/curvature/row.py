"""Row-block curvature S^row (HETA appendix): one HVP per probe covers every token's row block."""

import torch
from jaxtyping import Float
from torch import Tensor, nn

from heta_lens._typing import TokensLike, typechecked
from heta_lens.config import HvpStrategy, RowBlock
from heta_lens.curvature.base import CurvatureJob, curvature_on_request, estimate
from heta_lens.curvature.hvp import HvpOperator, hvps_in_chunks
from heta_lens.targets import TargetLike


def row_block_curvature(
    op: HvpOperator,
    probes: Float[Tensor, "n_probes ctx d_model"],
    *,
    chunk_size: int,
    progress: bool = False,
) -> Float[Tensor, " ctx"]:
    """S_i^row = (1/m) Σ_k ‖Π_i H r_k‖₁ with r_k over all blocks: m HVPs in all."""
    products = hvps_in_chunks(op, probes, chunk_size=chunk_size, progress=progress)
    return products.abs().sum(-1).mean(0)


@typechecked
def row_curvature(
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
    """Row-block curvature of log P(x_target | prefix): cross-token Hessian terms included.

    Implements the appendix's row-block mass with a Hutchinson estimate,

        S_i^row = (1/m) Σ_k ‖Π_i H r_k‖₁ = (1/m) Σ_k ‖Σ_j H_ij r_{k,j}‖₁,

    H the Hessian of g(X) = log P(x_target | x_<target) w.r.t. the input embeddings X, r_k
    Rademacher vectors over ALL token blocks at once. One HVP H r_k gives Π_i H r_k for every
    token i, so the cost is m HVPs in all (eq. 3, :func:`heta_lens.curvature_sensitivity`,
    needs ctx·m). Same probes as eq. 3: with the same ``generator`` and ``n_probes`` both read
    identical random numbers, and the two coincide when H is block-diagonal (H_ij = 0, i ≠ j).
    Otherwise S^row also carries cross-token curvature (and sign cancellations between blocks),
    so it is a different quantity, not an unbiased estimate of eq. 3: how far it ranks tokens
    like eq. 3 must be measured.

    Args:
        model: A ``HookedTransformer`` or ``TransformerBridge``.
        tokens: Token ids containing the target, or a string.
        target: Index of the explained token (default: last), or a target whose f is
            differentiated instead (:mod:`heta_lens.targets`).
        n_probes: m, used when ``probes`` is None.
        probes: Explicit probes ``[m, ctx, d_model]``; the result is then exactly
            (1/m) Σ_k ‖Π_i H probes[k]‖₁.
        generator: Source of Rademacher probes (default: a generator seeded with 0).
        chunk_size: HVPs per batched double backward.
        strategy: HVP strategy (:func:`heta_lens.curvature.hvp.hessian_vector_products`).

    Returns:
        S^row, shape ``[ctx]``, non-negative.

    Raises:
        ValueError: Bad tokens/target, or ``probes`` of the wrong shape.
        TypeError: Non-floating ``probes``.

    Examples:
        >>> from heta_lens.testing import tiny_bridge
        >>> s = row_curvature(tiny_bridge(), torch.tensor([1, 5, 7, 3]), n_probes=2)
        >>> s.shape, bool((s >= 0).all())
        (torch.Size([3]), True)
    """
    return curvature_on_request(
        model,
        tokens,
        RowBlock(n_probes=n_probes),
        target=target,
        probes=probes,
        generator=generator,
        chunk_size=chunk_size,
        strategy=strategy,
    )


@estimate.register
def _estimate(spec: RowBlock, job: CurvatureJob) -> Float[Tensor, " ctx"]:
    del spec  # the probe count is already in job.probes
    op = job.embedding_operator()
    return row_block_curvature(op, job.probes, chunk_size=job.chunk_size, progress=job.progress)
