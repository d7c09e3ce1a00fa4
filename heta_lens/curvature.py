"""Curvature sensitivity S_i (HETA eq. 3): Hutchinson estimate of ‖H_ii r‖₁ per token block."""

from functools import partial

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn
from tqdm.auto import tqdm

from heta_lens._typing import TokensLike, typechecked
from heta_lens.config import HvpStrategy
from heta_lens.hooks import ModelAdapter
from heta_lens.hvp import BatchedScalarFn, HvpOperator
from heta_lens.inputs import Prepared, on_request


def rademacher_probes(
    n_probes: int, ctx: int, d_model: int, *, generator: torch.Generator, dtype: torch.dtype
) -> Float[Tensor, "n_probes ctx d_model"]:
    """i.i.d. ±1 entries drawn from ``generator`` (the global RNG is never touched)."""
    bits = torch.randint(0, 2, (n_probes, ctx, d_model), generator=generator)
    return (bits * 2 - 1).to(dtype)


def block_probe_vectors(
    probes: Float[Tensor, "n_probes ctx d_model"], pairs: Int[Tensor, "n_pairs 2"]
) -> Float[Tensor, "n_pairs ctx d_model"]:
    """For each (token i, probe k) pair, probe k restricted to block i (zeros elsewhere)."""
    out = torch.zeros((pairs.shape[0], *probes.shape[1:]), dtype=probes.dtype, device=probes.device)
    rows = torch.arange(pairs.shape[0], device=probes.device)
    out[rows, pairs[:, 0]] = probes[pairs[:, 1], pairs[:, 0]]
    return out


def own_block_products(
    op: HvpOperator,
    vectors: Float[Tensor, "n_vec ctx d_model"],
    *,
    chunk_size: int,
    progress: bool = False,
    desc: str = "curvature HVPs",
) -> Float[Tensor, "n_vec ctx d_model"]:
    """out[k, i] = H_ii v_{k,i} = Π_i H (Π_i v_k) for every vector k and token block i.

    One HVP per (token, vector) pair (ctx·n_vec in all), ``chunk_size`` pairs per batched double
    backward; only the own block of each HVP is kept, so the working memory beyond the output is
    O(chunk_size · ctx · d_model).
    """
    n, ctx, _ = vectors.shape
    pairs = torch.cartesian_prod(torch.arange(ctx), torch.arange(n)).to(vectors.device)
    out = torch.zeros_like(vectors)
    starts = range(0, pairs.shape[0], chunk_size)
    for start in tqdm(starts, desc=desc, unit="chunk", disable=not progress):
        chunk = pairs[start : start + chunk_size]
        hv = op(block_probe_vectors(vectors, chunk))
        out[chunk[:, 1], chunk[:, 0]] = hv[
            torch.arange(chunk.shape[0], device=hv.device), chunk[:, 0]
        ]
    return out


def hvps_in_chunks(
    op: HvpOperator,
    vectors: Float[Tensor, "n_vec ctx d_model"],
    *,
    chunk_size: int,
    progress: bool = False,
    desc: str = "curvature HVPs",
) -> Float[Tensor, "n_vec ctx d_model"]:
    """H v_k for every whole vector v_k (one HVP each), ``chunk_size`` per double backward."""
    starts = range(0, vectors.shape[0], chunk_size)
    return torch.cat(
        [
            op(vectors[start : start + chunk_size])
            for start in tqdm(starts, desc=desc, unit="chunk", disable=not progress)
        ]
    )


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


def target_log_prob_fn(adapter: ModelAdapter, req: Prepared) -> BatchedScalarFn:
    """g(X) = log P(x_target | X) with X the prefix's input embeddings, row-wise over a batch."""

    def fn(x: Tensor) -> Tensor:
        ids = req.prefix[None].expand(x.shape[0], -1)
        return adapter.last_log_probs(ids, x)[:, req.target_id]

    return fn


def default_generator(generator: torch.Generator | None) -> torch.Generator:
    """``generator``, or a fresh one seeded with 0 (so calls without one are deterministic)."""
    return generator if generator is not None else torch.Generator().manual_seed(0)


def resolve_probes(
    adapter: ModelAdapter,
    ctx: int,
    *,
    n_probes: int,
    probes: Tensor | None,
    generator: torch.Generator,
) -> Float[Tensor, "m ctx d_model"]:
    """Explicit ``probes`` validated, or ``n_probes`` Rademacher probes drawn from ``generator``.

    Raises:
        TypeError: Non-floating ``probes``.
        ValueError: ``probes`` not of shape ``[m, ctx, d_model]``.
    """
    if probes is None:
        probes = rademacher_probes(
            n_probes, ctx, adapter.d_model, generator=generator, dtype=adapter.dtype
        )
    elif not probes.dtype.is_floating_point:
        raise TypeError(f"probes must be a floating tensor; got dtype {probes.dtype}")
    if probes.ndim != 3 or tuple(probes.shape[1:]) != (ctx, adapter.d_model):
        raise ValueError(
            f"probes must have shape [m, ctx={ctx}, d_model={adapter.d_model}]; "
            f"got {tuple(probes.shape)}"
        )
    return probes.to(device=adapter.device, dtype=adapter.dtype)


def embedding_hvp_operator(
    adapter: ModelAdapter, req: Prepared, *, strategy: HvpStrategy
) -> HvpOperator:
    """v ↦ H v, H = ∇²_X log P(x_target | X) at the prefix's input embeddings X."""
    x = adapter.embed(req.prefix[None])[0].detach()
    return HvpOperator(target_log_prob_fn(adapter, req), x, strategy=strategy)


@typechecked
def curvature_sensitivity(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: int | None = None,
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
    :mod:`heta_lens.hvp`). H is never formed.

    Args:
        model: A ``HookedTransformer`` or ``TransformerBridge``.
        tokens: Token ids containing the target, or a string.
        target: Index of the explained token (default: last).
        n_probes: m, used when ``probes`` is None.
        probes: Explicit probes ``[m, ctx, d_model]``; the result is then exactly
            (1/m) Σ_k ‖H_ii probes[k, i]‖₁ (any real entries, not only ±1).
        generator: Source of Rademacher probes (default: a generator seeded with 0, so calls
            are deterministic).
        chunk_size: HVPs per batched double backward.
        strategy: HVP strategy (:func:`heta_lens.hvp.hessian_vector_products`).

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
    compute = partial(
        compute_curvature,
        n_probes=n_probes,
        probes=probes,
        generator=generator,
        chunk_size=chunk_size,
        strategy=strategy,
    )
    return on_request(model, tokens, target, compute)


def compute_curvature(
    adapter: ModelAdapter,
    req: Prepared,
    *,
    n_probes: int,
    probes: Tensor | None = None,
    generator: torch.Generator | None = None,
    chunk_size: int = 32,
    strategy: HvpStrategy = "batched_grad",
    progress: bool = False,
) -> Float[Tensor, " ctx"]:
    """:func:`curvature_sensitivity` on an already validated request (inside the state guard)."""
    gen = default_generator(generator)
    probes = resolve_probes(
        adapter, int(req.prefix.numel()), n_probes=n_probes, probes=probes, generator=gen
    )
    op = embedding_hvp_operator(adapter, req, strategy=strategy)
    return block_curvature(op, probes, chunk_size=chunk_size, progress=progress)
