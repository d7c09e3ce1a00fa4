"""Hessian–vector products of a scalar function of the input embeddings, never forming H.

The operator, and its chunked application to probe vectors (whole, or restricted to one token
block each), shared by every curvature estimator.

:class:`HvpOperator` (and :func:`hessian_vector_products`) with two reverse-over-reverse
strategies:

- ``"batched_grad"`` (default): one forward and one first backward at x, then the double
  backward is vmapped over the probes (``torch.autograd.grad(..., is_grads_batched=True)``).
  The faster of the two on our models (``benchmarks/RESULTS.md``).
- ``"replicate"``: the point x is replicated along a batch axis, one row per probe
  vector; one batched forward, one backward with ``create_graph=True`` and one double
  backward give H v for every row. Rows are independent because a transformer treats batch
  elements independently. Kept as the fallback for ops without a vmap batching rule.

Why double backward and not ``torch.func``: torch.func's ``jvp(grad(f))``/``vjp(grad(f))``
need the model traced functionally; through TL's hook machinery (HookedTransformer especially)
they were measured an order of magnitude slower, and SDPA kernels have no forward-mode AD
on CPU. Both strategies give the same numbers (tested against a dense Hessian); their timings
live in ``benchmarks/RESULTS.md``.
"""

from collections.abc import Iterator

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from heta_lens.config import HvpStrategy
from heta_lens.hooks import ModelAdapter
from heta_lens.inputs import Prepared
from heta_lens.objective import BatchedScalarFn, scalar_fn


class HvpOperator:
    """v ↦ H v with H = ∇²f(x), for batches of probe vectors (Pearlmutter, double backward).

    With ``"batched_grad"`` the forward and first backward run once, at construction, and every
    call reuses that graph; with ``"replicate"`` every call runs one batched forward.

    Args:
        fn: Row-wise scalar function (see :data:`BatchedScalarFn`).
        x: Point at which the Hessian is taken, ``[pos, d_model]``.
        strategy: ``"replicate"`` or ``"batched_grad"`` (see module docstring).
    """

    def __init__(
        self,
        fn: BatchedScalarFn,
        x: Float[Tensor, "pos d_model"],
        *,
        strategy: HvpStrategy = "batched_grad",
    ) -> None:
        if strategy not in ("replicate", "batched_grad"):
            raise ValueError(f"unknown HVP strategy {strategy!r}")
        self.fn, self.x, self.strategy = fn, x.detach(), strategy
        self._point: Tensor | None = None
        self._grad: Tensor | None = None
        if strategy == "batched_grad":
            with torch.enable_grad():
                self._point = self.x[None].clone().requires_grad_(True)
                (self._grad,) = torch.autograd.grad(
                    fn(self._point).sum(), self._point, create_graph=True
                )

    def __call__(
        self, vectors: Float[Tensor, "n_vec pos d_model"]
    ) -> Float[Tensor, "n_vec pos d_model"]:
        """H v for each row of ``vectors`` (one batched double backward)."""
        with torch.enable_grad():
            if self._grad is not None and not self._grad.requires_grad:
                return torch.zeros_like(vectors)  # ∇f does not depend on x: f is linear, H = 0
            if self._point is not None and self._grad is not None:
                (hv,) = torch.autograd.grad(
                    self._grad,
                    self._point,
                    grad_outputs=vectors[:, None],
                    is_grads_batched=True,
                    retain_graph=True,
                )
                return hv[:, 0]
            point = self.x.expand(vectors.shape[0], -1, -1).clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.fn(point).sum(), point, create_graph=True)
            if not grad.requires_grad:
                return torch.zeros_like(vectors)
            (hv,) = torch.autograd.grad(grad, point, grad_outputs=vectors)
            return hv


def hessian_vector_products(
    fn: BatchedScalarFn,
    x: Float[Tensor, "pos d_model"],
    vectors: Float[Tensor, "n_vec pos d_model"],
    *,
    chunk_size: int = 16,
    strategy: HvpStrategy = "batched_grad",
) -> Float[Tensor, "n_vec pos d_model"]:
    """H v for every v in ``vectors``, in chunks of ``chunk_size`` (see :class:`HvpOperator`)."""
    op = HvpOperator(fn, x, strategy=strategy)
    return torch.cat(
        [op(vectors[s : s + chunk_size]) for s in range(0, vectors.shape[0], chunk_size)]
    )


class HvpBudgetError(ValueError):
    """One Hessian–vector product does not fit in the HVP memory budget (``Hvp.memory_gb``)."""


def hvp_bytes(
    *, n_layers: int, n_heads: int, d_model: int, d_mlp: int, ctx: int, dtype_bytes: int
) -> tuple[int, int]:
    """``(graph, per_vector)``: estimated bytes of one HVP operator's retained graph and of
    each vector of one batched double backward, for a ``ctx``-token input.

    The forward and the first backward (``create_graph=True``) keep, per layer and head, the
    attention probabilities, their gradient and the scores' gradient (3·n_heads·ctx²) plus
    activation-sized buffers; the double backward then holds, per vector, a gradient for
    each of them in every layer at once (n_heads·ctx² + 10·ctx·(d_model + d_mlp) per layer).
    Calibrated on SmolLM2-135M in float32 (peak RSS over the loaded model, chunks of 1, 2 and
    5 vectors, ``benchmarks/memory_stages.py``; ``benchmarks/RESULTS.md`` §9): measured graph
    0.94 / 2.36 GiB and 0.58 / 1.40 GiB per vector at 256 / 512 tokens, estimated 0.92 / 2.24
    and 0.67 / 1.47 GiB. At 2,047 tokens the estimate is 18.4 GiB of graph and 9.1 GiB per
    vector; one full-length HVP fits a 4 GB budget up to 542 context tokens.
    """
    per_layer_graph = 3 * n_heads * ctx * ctx + 12 * ctx * (d_model + d_mlp)
    per_layer_vector = n_heads * ctx * ctx + 10 * ctx * (d_model + d_mlp)
    return (
        n_layers * per_layer_graph * dtype_bytes,
        n_layers * per_layer_vector * dtype_bytes,
    )


def auto_chunk_size(
    *,
    n_layers: int,
    n_heads: int,
    d_model: int,
    d_mlp: int,
    ctx: int,
    dtype_bytes: int,
    budget_gb: float,
    max_chunk: int = 64,
    strategy: HvpStrategy = "batched_grad",
) -> int:
    """Probes per batched double backward that fit in ``budget_gb`` of activations.

    With ``"batched_grad"`` the graph (:func:`hvp_bytes`) is kept once for all chunks and each
    vector of a chunk adds its per-vector cost; with ``"replicate"`` every vector carries its
    own graph. Chunking never changes the result (tested), only peak memory and speed.

    Raises:
        HvpBudgetError: Not even one vector fits: the budget would be overrun, so nothing runs.
    """
    graph, vector = hvp_bytes(
        n_layers=n_layers,
        n_heads=n_heads,
        d_model=d_model,
        d_mlp=d_mlp,
        ctx=ctx,
        dtype_bytes=dtype_bytes,
    )
    fixed, per = (graph, vector) if strategy == "batched_grad" else (0, graph + vector)
    budget = budget_gb * 2**30
    if fixed + per > budget:
        raise HvpBudgetError(
            f"one Hessian-vector product over {ctx} context tokens needs about "
            f"{(fixed + per) / 2**30:.1f} GB of activations on this model (the double "
            f"backward keeps every layer's attention maps), more than the HVP memory budget "
            f"of {budget_gb:g} GB (Hvp(memory_gb=...), flat keyword hvp_memory_gb). Raise the "
            "budget if the machine has the memory, or use windows (the 'fast-long' preset: "
            "curvature over windows of 128 tokens)"
        )
    return max(1, min(max_chunk, int((budget - fixed) // per)))


def target_log_prob_fn(
    adapter: ModelAdapter, req: Prepared, *, at_layer: int | None = None
) -> BatchedScalarFn:
    """The request's scalar f(X) row-wise over a batch, X the context rows of the activation
    at ``hook_embed`` (``at_layer=None``) or ``blocks.{at_layer}.hook_resid_pre``.

    For a token target g(X) = log P(x_target | X); in general the objective's f
    (:func:`heta_lens.objective.scalar_fn`), with the rows of a span's tail held at their
    clean values.
    """
    return objective_point(adapter, req, at_layer=at_layer)[1]


def objective_point(
    adapter: ModelAdapter, req: Prepared, *, at_layer: int | None = None
) -> tuple[Float[Tensor, "ctx d_model"], BatchedScalarFn]:
    """X, the context rows of the activation at ``hook_embed`` (or ``blocks.{at_layer}.
    hook_resid_pre``) of the request's run sequence (detached), and f as a function of X."""
    ids = req.run_ids
    if at_layer is None:
        full = adapter.embed(ids[None])[0].detach()
    else:
        full = adapter.resid_pre(ids, at_layer)
    ctx = int(req.prefix.numel())
    tail = full[ctx:] if full.shape[0] > ctx else None
    return full[:ctx], scalar_fn(req.goal, adapter, ids, tail, at_layer=at_layer)


def embedding_hvp_operator(
    adapter: ModelAdapter, req: Prepared, *, strategy: HvpStrategy
) -> HvpOperator:
    """v ↦ H v, H = ∇²_X f(X) at the context's input embeddings X (f = log P(x_target | X)
    for a token target)."""
    x, fn = objective_point(adapter, req)
    return HvpOperator(fn, x, strategy=strategy)


def block_probe_vectors(
    probes: Float[Tensor, "n_probes ctx d_model"], pairs: Int[Tensor, "n_pairs 2"]
) -> Float[Tensor, "n_pairs ctx d_model"]:
    """For each (token i, probe k) pair, probe k restricted to block i (zeros elsewhere)."""
    out = torch.zeros((pairs.shape[0], *probes.shape[1:]), dtype=probes.dtype, device=probes.device)
    rows = torch.arange(pairs.shape[0], device=probes.device)
    out[rows, pairs[:, 0]] = probes[pairs[:, 1], pairs[:, 0]]
    return out


def _block_hvps(
    op: HvpOperator,
    vectors: Float[Tensor, "n_vec ctx d_model"],
    *,
    chunk_size: int,
    progress: bool,
    desc: str,
) -> Iterator[tuple[Int[Tensor, "chunk 2"], Float[Tensor, "chunk ctx d_model"]]]:
    """(pairs, H Π_i v_k for each (i, k) pair) for every (token block, vector) pair, in
    chunks of ``chunk_size`` pairs (one batched double backward each)."""
    n, ctx, _ = vectors.shape
    device = vectors.device
    pairs = torch.cartesian_prod(torch.arange(ctx, device=device), torch.arange(n, device=device))
    starts = range(0, pairs.shape[0], chunk_size)
    for start in tqdm(starts, desc=desc, unit="chunk", disable=not progress):
        chunk = pairs[start : start + chunk_size]
        yield chunk, op(block_probe_vectors(vectors, chunk))


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
    out = torch.zeros_like(vectors)
    for chunk, hv in _block_hvps(op, vectors, chunk_size=chunk_size, progress=progress, desc=desc):
        out[chunk[:, 1], chunk[:, 0]] = hv[
            torch.arange(chunk.shape[0], device=hv.device), chunk[:, 0]
        ]
    return out


def cross_block_norms(
    op: HvpOperator,
    vectors: Float[Tensor, "n_vec ctx d_model"],
    *,
    chunk_size: int,
    progress: bool = False,
    desc: str = "curvature HVPs",
) -> Float[Tensor, "n_vec ctx ctx"]:
    """out[k, j, i] = ‖Π_i H Π_j v_k‖₁ = ‖H_ij v_{k,j}‖₁ for every vector k and blocks j, i.

    The same HVPs as :func:`own_block_products` (one per (block j, vector k) pair); each is
    kept whole as the L1 norms of its ctx row blocks, so ``out[k, i, i]`` is the L1 norm of
    ``own_block_products(...)[k, i]``. Extra work: one |·| and sum over each HVP.
    """
    n, ctx, _ = vectors.shape
    out = torch.zeros((n, ctx, ctx), dtype=vectors.dtype, device=vectors.device)
    for chunk, hv in _block_hvps(op, vectors, chunk_size=chunk_size, progress=progress, desc=desc):
        out[chunk[:, 1], chunk[:, 0]] = hv.abs().sum(-1)
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
