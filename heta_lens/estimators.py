"""One entry point for the curvature term, dispatching on ``HetaConfig.curvature_estimator``.

Cost in HVPs (ctx context tokens, m probes, r = ``lowrank_rank``):

- ``"exact"`` — eq. 3, :func:`heta_lens.curvature.curvature_sensitivity`: ctx·m.
- ``"row"`` — row-block mass, :func:`heta_lens.curvature_row.row_curvature`: m.
- ``"lowrank"`` — HETA-LR, :func:`heta_lens.curvature_lowrank.lowrank_curvature`:
  2·min(r, d_model)·ctx per block (cheaper than ``"exact"`` only when 2r < m), or 2·r with
  ``lowrank_scope="global"``.
- ``"layer"`` — HETA-LS, :func:`heta_lens.curvature_layer.layer_curvature`: ctx·m, each
  back-propagating through the last ``layer_k`` blocks only.
"""

from collections.abc import Callable

import torch
from jaxtyping import Float
from torch import Tensor

from heta_lens.config import HetaConfig
from heta_lens.curvature import compute_curvature
from heta_lens.curvature_layer import compute_layer_curvature
from heta_lens.curvature_lowrank import compute_lowrank_curvature
from heta_lens.curvature_row import compute_row_curvature
from heta_lens.hooks import ModelAdapter
from heta_lens.inputs import Prepared

CurvatureEstimatorFn = Callable[
    [ModelAdapter, Prepared, HetaConfig, torch.Generator, bool], Float[Tensor, " ctx"]
]
"""``(adapter, request, config, generator, progress) -> S`` for one estimator."""


def _exact(
    adapter: ModelAdapter, req: Prepared, config: HetaConfig, gen: torch.Generator, progress: bool
) -> Tensor:
    return compute_curvature(
        adapter,
        req,
        n_probes=config.n_probes,
        generator=gen,
        chunk_size=config.hvp_chunk,
        strategy=config.hvp_strategy,
        progress=progress,
    )


def _row(
    adapter: ModelAdapter, req: Prepared, config: HetaConfig, gen: torch.Generator, progress: bool
) -> Tensor:
    return compute_row_curvature(
        adapter,
        req,
        n_probes=config.n_probes,
        generator=gen,
        chunk_size=config.hvp_chunk,
        strategy=config.hvp_strategy,
        progress=progress,
    )


def _lowrank(
    adapter: ModelAdapter, req: Prepared, config: HetaConfig, gen: torch.Generator, progress: bool
) -> Tensor:
    return compute_lowrank_curvature(
        adapter,
        req,
        rank=config.lowrank_rank,
        scope=config.lowrank_scope,
        n_probes=config.n_probes,
        generator=gen,
        chunk_size=config.hvp_chunk,
        strategy=config.hvp_strategy,
        progress=progress,
    )


def _layer(
    adapter: ModelAdapter, req: Prepared, config: HetaConfig, gen: torch.Generator, progress: bool
) -> Tensor:
    return compute_layer_curvature(
        adapter,
        req,
        k=config.layer_k,
        n_probes=config.n_probes,
        generator=gen,
        chunk_size=config.hvp_chunk,
        strategy=config.hvp_strategy,
        progress=progress,
    )


CURVATURE_ESTIMATORS: dict[str, CurvatureEstimatorFn] = {
    "exact": _exact,
    "row": _row,
    "lowrank": _lowrank,
    "layer": _layer,
}
"""Every value of :data:`heta_lens.config.CurvatureEstimator`, mapped to its implementation."""


def estimate_curvature(
    adapter: ModelAdapter, req: Prepared, *, config: HetaConfig, progress: bool = False
) -> Float[Tensor, " ctx"]:
    """The curvature term S of ``config`` for a validated request (inside the state guard).

    Probes (and the low-rank sketch, drawn after them) come from
    ``torch.Generator().manual_seed(config.seed)``, so every estimator is deterministic under a
    seed, and with the same ``n_probes`` all four read identical Rademacher probes.

    Raises:
        ValueError: An unknown estimator name (the message lists the valid ones).
    """
    estimator = CURVATURE_ESTIMATORS.get(config.curvature_estimator)
    if estimator is None:
        raise ValueError(
            f"unknown curvature estimator {config.curvature_estimator!r}; "
            f"valid: {', '.join(CURVATURE_ESTIMATORS)}"
        )
    return estimator(adapter, req, config, torch.Generator().manual_seed(config.seed), progress)
