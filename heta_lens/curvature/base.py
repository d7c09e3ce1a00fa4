"""One entry point for the curvature term S, dispatched on the curvature config's type.

Each estimator module registers its implementation for its config type on :func:`estimate`;
:func:`curvature_of` draws (or validates) the probes and calls it. Cost in HVPs (ctx context
tokens, m probes, r the rank):

- :class:`~heta_lens.config.Exact` — eq. 3, :mod:`heta_lens.curvature.exact`: ctx·m.
- :class:`~heta_lens.config.RowBlock` — row-block mass, :mod:`heta_lens.curvature.row`: m.
- :class:`~heta_lens.config.LowRank` — HETA-LR, :mod:`heta_lens.curvature.lowrank`:
  2·min(r, d_model)·ctx per block (cheaper than eq. 3 only when 2r < m), or 2·r with
  ``scope="global"``.
- :class:`~heta_lens.config.LayerSampled` — HETA-LS, :mod:`heta_lens.curvature.layer`: ctx·m,
  each back-propagating through the last k blocks only.

The pairwise interaction map (:func:`estimate_interactions`, :func:`interactions_of`) is
registered by the exact and layer-sampled estimators, whose block HVPs already hold every
H_ij r_j; the row-block and low-rank estimators refuse it.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import singledispatch
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn

from heta_lens.config import Curvature, HetaConfig, Hvp, HvpStrategy, LayerSampled
from heta_lens.curvature.hvp import HvpOperator, auto_chunk_size, embedding_hvp_operator
from heta_lens.curvature.probes import default_generator, resolve_probes
from heta_lens.devices import auto_budget_gb
from heta_lens.hooks import ModelAdapter
from heta_lens.inputs import Prepared
from heta_lens.targets import TargetLike, on_request


@dataclass(frozen=True, kw_only=True)
class CurvatureJob:
    """Everything an estimator reads besides its own config: the request and the HVP options.

    Attributes:
        adapter: The model surface.
        req: The validated request.
        probes: The Rademacher (or explicit) probes, ``[m, ctx, d_model]``.
        generator: Drew the probes; further randomness (the low-rank sketch) comes from it too.
        chunk_size: HVPs per batched double backward.
        strategy: HVP strategy.
        progress: Show tqdm bars.
    """

    adapter: ModelAdapter
    req: Prepared
    probes: Float[Tensor, "m ctx d_model"]
    generator: torch.Generator
    chunk_size: int
    strategy: HvpStrategy
    progress: bool

    def embedding_operator(self) -> HvpOperator:
        """v ↦ H v with H the Hessian w.r.t. the prefix's input embeddings."""
        return embedding_hvp_operator(self.adapter, self.req, strategy=self.strategy)


@singledispatch
def estimate(spec: object, job: CurvatureJob) -> Float[Tensor, " ctx"]:
    """S under ``spec`` for ``job``: each estimator module registers its config type here
    (``@estimate.register``); call :func:`curvature_of`, which draws the probes first.

    Raises:
        TypeError: No estimator is registered for ``type(spec)``.
    """
    del job
    raise TypeError(
        f"no curvature estimator is registered for {type(spec).__name__}; "
        "expected Exact, RowBlock, LowRank or LayerSampled"
    )


@singledispatch
def estimate_interactions(spec: object, job: CurvatureJob) -> Float[Tensor, "ctx ctx"]:
    """The pairwise curvature map X[i, j] = (1/m) Σ_k ‖Π_i H Π_j r_{k,j}‖₁ under ``spec``
    (diagonal: S). Registered by the estimators whose block HVPs hold it
    (:data:`heta_lens.config.PAIRWISE_TYPES`); call :func:`interactions_of`.

    Raises:
        ValueError: ``spec``'s estimator cannot give the map.
    """
    del job
    name = getattr(spec, "estimator", type(spec).__name__)
    raise ValueError(
        f"the {name!r} curvature estimator cannot give pairwise interactions (its HVPs do not "
        "separate the token blocks); use the exact or layer estimator"
    )


def make_job(
    spec: Curvature,
    adapter: ModelAdapter,
    req: Prepared,
    *,
    probes: Tensor | None = None,
    generator: torch.Generator | None = None,
    chunk_size: int = 32,
    strategy: HvpStrategy = "batched_grad",
    progress: bool = False,
) -> CurvatureJob:
    """The job of estimator ``spec`` on a validated request: probes drawn (or validated) first.

    The Rademacher probes are drawn first from ``generator`` (default: seeded with 0), so every
    estimator with the same ``n_probes`` reads identical probes; estimators that need more
    randomness (the low-rank sketch) draw it afterwards from the same generator.

    Raises:
        TypeError: ``spec`` is not a registered curvature type, or non-floating ``probes``.
        ValueError: ``probes`` of the wrong shape, or a ``generator`` that is not on the CPU.
    """
    if not isinstance(spec, Curvature):
        raise TypeError(
            f"curvature must be Exact, RowBlock, LowRank or LayerSampled; got {type(spec).__name__}"
        )
    gen = default_generator(generator)
    ctx = int(req.prefix.numel())
    probes = resolve_probes(adapter, ctx, n_probes=spec.n_probes, probes=probes, generator=gen)
    return CurvatureJob(
        adapter=adapter,
        req=req,
        probes=probes,
        generator=gen,
        chunk_size=chunk_size,
        strategy=strategy,
        progress=progress,
    )


def curvature_of(
    spec: Curvature,
    adapter: ModelAdapter,
    req: Prepared,
    *,
    probes: Tensor | None = None,
    generator: torch.Generator | None = None,
    chunk_size: int = 32,
    strategy: HvpStrategy = "batched_grad",
    progress: bool = False,
) -> Float[Tensor, " ctx"]:
    """S under estimator ``spec`` for a validated request (inside the state guard); the
    options as :func:`make_job`.

    Raises:
        TypeError | ValueError: As :func:`make_job`.
    """
    job = make_job(
        spec,
        adapter,
        req,
        probes=probes,
        generator=generator,
        chunk_size=chunk_size,
        strategy=strategy,
        progress=progress,
    )
    return estimate(spec, job)


def interactions_of(
    spec: Curvature,
    adapter: ModelAdapter,
    req: Prepared,
    *,
    probes: Tensor | None = None,
    generator: torch.Generator | None = None,
    chunk_size: int = 32,
    strategy: HvpStrategy = "batched_grad",
    progress: bool = False,
) -> Float[Tensor, "ctx ctx"]:
    """The pairwise curvature map under ``spec`` (:func:`estimate_interactions`) for a
    validated request (inside the state guard); the options as :func:`make_job`.

    Raises:
        TypeError | ValueError: As :func:`make_job`; ValueError for an estimator without it.
    """
    job = make_job(
        spec,
        adapter,
        req,
        probes=probes,
        generator=generator,
        chunk_size=chunk_size,
        strategy=strategy,
        progress=progress,
    )
    return estimate_interactions(spec, job)


def curvature_on_request(
    model: nn.Module,
    tokens: object,
    spec: Curvature,
    *,
    target: TargetLike,
    probes: Tensor | None,
    generator: torch.Generator | None,
    chunk_size: int,
    strategy: HvpStrategy,
    of: Callable[..., Tensor] = curvature_of,
) -> Tensor:
    """The public estimators' shell: validate, then ``of`` (:func:`curvature_of`, or
    :func:`interactions_of`) inside the guard."""

    def compute(adapter: ModelAdapter, req: Prepared) -> Tensor:
        return of(
            spec,
            adapter,
            req,
            probes=probes,
            generator=generator,
            chunk_size=chunk_size,
            strategy=strategy,
        )

    return on_request(model, tokens, target, compute)


def hvp_dims(adapter: ModelAdapter, *, n_layers: int | None = None) -> dict[str, int]:
    """The model sizes :func:`~heta_lens.curvature.hvp.hvp_bytes` and
    :func:`~heta_lens.curvature.hvp.auto_chunk_size` take: ``n_layers`` (the blocks the HVPs
    back-propagate through; default all), ``n_heads``, ``d_model``, ``d_mlp``, ``dtype_bytes``."""
    return {
        "n_layers": adapter.n_layers if n_layers is None else n_layers,
        "n_heads": adapter.n_heads,
        "d_model": adapter.d_model,
        "d_mlp": adapter.d_mlp,
        "dtype_bytes": torch.finfo(adapter.dtype).bits // 8,
    }


def hvp_chunk_for(adapter: ModelAdapter, ctx: int, hvp: Hvp, *, n_layers: int | None = None) -> int:
    """``hvp.chunk``, or a chunk sized to ``hvp.memory_gb`` (``None``: the automatic budget of
    the model's device, :func:`heta_lens.devices.auto_budget_gb`) for this model and context
    (:func:`heta_lens.curvature.hvp.auto_chunk_size`); ``n_layers`` is how many blocks the
    HVPs back-propagate through (default: all).

    Raises:
        HvpBudgetError: No explicit chunk, and one HVP does not fit in ``hvp.memory_gb``.
    """
    if hvp.chunk is not None:
        return hvp.chunk
    return auto_chunk_size(
        **hvp_dims(adapter, n_layers=n_layers),
        ctx=ctx,
        budget_gb=auto_budget_gb(adapter.device) if hvp.memory_gb is None else hvp.memory_gb,
        strategy=hvp.strategy,
    )


def estimate_curvature(
    adapter: ModelAdapter, req: Prepared, *, config: HetaConfig, progress: bool = False
) -> Float[Tensor, " ctx"]:
    """The curvature term S of ``config`` for a validated request (inside the state guard).

    Probes come from ``torch.Generator().manual_seed(config.seed)``, so every estimator is
    deterministic under a seed.
    """
    options = _options(adapter, req, config, progress)
    return curvature_of(config.curvature, adapter, req, **options)


def estimate_curvature_interactions(
    adapter: ModelAdapter, req: Prepared, *, config: HetaConfig, progress: bool = False
) -> Float[Tensor, "ctx ctx"]:
    """The pairwise curvature map of ``config``'s estimator (same probes as
    :func:`estimate_curvature`; its diagonal is S).

    Raises:
        ValueError: The estimator cannot give it.
    """
    options = _options(adapter, req, config, progress)
    return interactions_of(config.curvature, adapter, req, **options)


def _options(
    adapter: ModelAdapter, req: Prepared, config: HetaConfig, progress: bool
) -> dict[str, Any]:
    spec = config.curvature
    depth = min(spec.k, adapter.n_layers) if isinstance(spec, LayerSampled) else None
    return {
        "generator": torch.Generator().manual_seed(config.seed),
        "chunk_size": hvp_chunk_for(adapter, int(req.prefix.numel()), config.hvp, n_layers=depth),
        "strategy": config.hvp.strategy,
        "progress": progress,
    }
