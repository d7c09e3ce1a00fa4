"""Low-rank curvature (HETA-LR): eq. 3 with each Hessian block replaced by a randomised sketch.

Two scopes, both exact at full rank:

- ``"block"`` (HETA-LR, the paper's "per token block"; the default): one randomised range
  finder per diagonal block H_ii, rank r ≤ d_model, 2·r·ctx HVPs.
- ``"global"``: one range finder over the whole H (rank r ≤ ctx·d_model), restricted to the
  diagonal blocks afterwards, 2·r HVPs in all. Our addition, not the paper's.
"""

import torch
from jaxtyping import Float
from torch import Tensor, nn

from heta_lens._typing import TokensLike, typechecked
from heta_lens.config import HvpStrategy, LowRank, LowRankScope
from heta_lens.curvature.base import CurvatureJob, curvature_on_request, estimate
from heta_lens.curvature.hvp import (
    HvpOperator,
    hvps_in_chunks,
    own_block_products,
)
from heta_lens.targets import TargetLike


def block_lowrank_curvature(
    op: HvpOperator,
    probes: Float[Tensor, "n_probes ctx d_model"],
    sketch: Float[Tensor, "rank ctx d_model"],
    *,
    chunk_size: int,
    progress: bool = False,
) -> Float[Tensor, " ctx"]:
    """S_i^LR = (1/m) Σ_k ‖Q_i B_i Q_iᵀ r_{k,i}‖₁, with Ω_i[:, j] = ``sketch[j, i]`` (rank ≤ d)."""
    basis, _ = torch.linalg.qr(
        own_block_products(
            op, sketch, chunk_size=chunk_size, progress=progress, desc="low-rank sketch HVPs"
        ).permute(1, 2, 0)
    )  # Q_i = orth(H_ii Ω_i): [ctx, d_model, rank]
    h_basis = own_block_products(
        op,
        basis.permute(2, 0, 1).contiguous(),
        chunk_size=chunk_size,
        progress=progress,
        desc="low-rank projection HVPs",
    )  # H_ii Q_i, as [rank, ctx, d_model]
    core = torch.einsum("cda,bcd->cab", basis, h_basis)  # B_i = Q_iᵀ H_ii Q_i
    coeff = torch.einsum("cda,kcd->kca", basis, probes)  # Q_iᵀ r_{k,i}
    approx = torch.einsum("cda,cab,kcb->kcd", basis, core, coeff)  # Ĥ_ii r_{k,i}
    return approx.abs().sum(-1).mean(0)


def global_lowrank_curvature(
    op: HvpOperator,
    probes: Float[Tensor, "n_probes ctx d_model"],
    sketch: Float[Tensor, "rank ctx d_model"],
    *,
    chunk_size: int,
    progress: bool = False,
) -> Float[Tensor, " ctx"]:
    """S_i = (1/m) Σ_k ‖Π_i Q B Qᵀ Π_i r_k‖₁ with Q = orth(H Ω), Ω = ``sketch`` (rank ≤ ctx·d)."""
    rank, ctx, d_model = sketch.shape
    y = hvps_in_chunks(
        op, sketch, chunk_size=chunk_size, progress=progress, desc="low-rank sketch HVPs"
    )
    basis, _ = torch.linalg.qr(y.reshape(rank, ctx * d_model).T)  # [ctx·d_model, rank]
    q = basis.T.reshape(rank, ctx, d_model).contiguous()  # q[a, i] = rows of block i of Q
    h_q = hvps_in_chunks(
        op, q, chunk_size=chunk_size, progress=progress, desc="low-rank projection HVPs"
    )
    core = q.reshape(rank, -1) @ h_q.reshape(rank, -1).T  # B = Qᵀ H Q
    coeff = torch.einsum("acd,kcd->kca", q, probes)  # Q_iᵀ r_{k,i}
    approx = torch.einsum("acd,ab,kcb->kcd", q, core, coeff)  # Π_i Ĥ Π_i r_k
    return approx.abs().sum(-1).mean(0)


@typechecked
def lowrank_curvature(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: TargetLike = None,
    rank: int = 64,
    scope: LowRankScope = "block",
    n_probes: int = 8,
    probes: Float[Tensor, "m ctx d_model"] | None = None,
    generator: torch.Generator | None = None,
    chunk_size: int = 32,
    strategy: HvpStrategy = "batched_grad",
) -> Float[Tensor, " ctx"]:
    """Low-rank curvature sensitivity (HETA-LR): eq. 3 on a randomised sketch of each H_ii.

    ``scope="block"`` (HETA-LR): per token block i, a randomised range finder of rank
    r = min(``rank``, d_model) (Halko, Martinsson & Tropp 2011) with Gaussian Ω_i ∈ R^{d×r}:

        Y_i = H_ii Ω_i,   Q_i = orth(Y_i) (QR),   B_i = Q_iᵀ H_ii Q_i,   Ĥ_ii = Q_i B_i Q_iᵀ,
        S_i^LR = (1/m) Σ_k ‖Ĥ_ii r_{k,i}‖₁,

    H the Hessian of g(X) = log P(x_target | x_<target) w.r.t. the input embeddings, r_k the
    same Rademacher probes as eq. 3 (drawn first from ``generator``; Ω afterwards). At full rank
    (r = d_model) Q_i is orthogonal and S^LR equals eq. 3 (:func:`heta_lens.curvature_sensitivity`)
    with the same probes; it is also exact whenever rank(H_ii) ≤ r.
    Cost: 2·r·ctx HVPs (r for Y_i, r for B_i, every block at once in each HVP batch), whatever
    m is. Eq. 3 costs ctx·m, so the per-block sketch is only cheaper when 2r < m: at the paper's
    r = 64 and our default m = 8 it makes 16× MORE HVPs than eq. 3. (Once Ĥ_ii is built, more
    probes are free, so it only pays off for large m.)

    ``scope="global"`` (our addition): one range finder over the whole H, Ω ∈ R^{(ctx·d)×r},
    r = min(``rank``, ctx·d_model); Q = orth(H Ω), B = Qᵀ H Q, Ĥ = Q B Qᵀ and
    S_i = (1/m) Σ_k ‖Π_i Ĥ Π_i r_k‖₁ = (1/m) Σ_k ‖Q_i B Q_iᵀ r_{k,i}‖₁, Q_i the rows of Q in
    block i. Cost 2·r HVPs in all; exact at r = ctx·d_model or whenever rank(H) ≤ r. At
    r ≪ ctx·d_model it keeps H's dominant directions, so tokens whose curvature is small next
    to other tokens' can come out near 0: its agreement with eq. 3 must be measured.

    Args:
        model: A ``HookedTransformer`` or ``TransformerBridge``.
        tokens: Token ids containing the target, or a string.
        target: Index of the explained token (default: last), or a target whose f is
            differentiated instead (:mod:`heta_lens.targets`).
        rank: Requested sketch rank (clipped to d_model, or to ctx·d_model for ``"global"``).
        scope: ``"block"`` (HETA-LR) or ``"global"``.
        n_probes: m, used when ``probes`` is None.
        probes: Explicit probes ``[m, ctx, d_model]``.
        generator: Source of the probes, then of Ω (default: a generator seeded with 0).
        chunk_size: HVPs per batched double backward.
        strategy: HVP strategy (:func:`heta_lens.curvature.hvp.hessian_vector_products`).

    Returns:
        S^LR, shape ``[ctx]``, non-negative.

    Raises:
        ValueError: Bad tokens/target, ``rank`` < 1, unknown ``scope``, or ``probes`` of the
            wrong shape.
        TypeError: Non-floating ``probes``.

    Examples:
        >>> from heta_lens.testing import tiny_bridge
        >>> s = lowrank_curvature(tiny_bridge(), torch.tensor([1, 5, 7, 3]), rank=4, n_probes=2)
        >>> s.shape, bool((s >= 0).all())
        (torch.Size([3]), True)
    """
    return curvature_on_request(
        model,
        tokens,
        LowRank(rank=rank, scope=scope, n_probes=n_probes),
        target=target,
        probes=probes,
        generator=generator,
        chunk_size=chunk_size,
        strategy=strategy,
    )


@estimate.register
def _estimate(spec: LowRank, job: CurvatureJob) -> Float[Tensor, " ctx"]:
    ctx, d_model = int(job.req.prefix.numel()), job.adapter.d_model
    r = min(spec.rank, d_model if spec.scope == "block" else ctx * d_model)
    sketch = torch.randn((r, ctx, d_model), generator=job.generator, dtype=job.adapter.dtype)
    estimator = block_lowrank_curvature if spec.scope == "block" else global_lowrank_curvature
    return estimator(
        job.embedding_operator(),
        job.probes,
        sketch.to(job.adapter.device),
        chunk_size=job.chunk_size,
        progress=job.progress,
    )
