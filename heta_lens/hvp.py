"""Hessian–vector products of a scalar function of the input embeddings, never forming H.

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

from collections.abc import Callable

import torch
from jaxtyping import Float
from torch import Tensor

from heta_lens.config import HvpStrategy

BatchedScalarFn = Callable[[Float[Tensor, "batch pos d_model"]], Float[Tensor, " batch"]]
"""f applied row-wise: maps a batch of embedding matrices to one scalar per row."""


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
) -> int:
    """Probes per batched double backward that fit in ``budget_gb`` of activations.

    Estimate per HVP: n_layers · (n_heads · ctx² + 10 · ctx · (d_model + d_mlp)) elements —
    the attention maps plus about ten activation-sized buffers per layer that the double
    backward keeps alive. On SmolLM2 this predicts 1.6 GB per HVP at ctx = 512 (a chunk of 32
    was measured to exceed 24 GB) and 0.17 GB at ctx = 64 (chunk 32 measured ≈ 7 GB over the
    weights). Chunking never changes the result (tested), only peak memory and speed.
    """
    per_hvp = n_layers * (n_heads * ctx * ctx + 10 * ctx * (d_model + d_mlp)) * dtype_bytes
    return max(1, min(max_chunk, int(budget_gb * 2**30 // per_hvp)))
