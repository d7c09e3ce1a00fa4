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
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from heta_lens.config import HetaConfig
from heta_lens.curvature import compute_curvature
from heta_lens.curvature_layer import compute_layer_curvature
from heta_lens.curvature_lowrank import compute_lowrank_curvature
from heta_lens.curvature_row import compute_row_curvature
from heta_lens.hooks import ModelAdapter
from heta_lens.hvp import auto_chunk_size
from heta_lens.inputs import Prepared

CurvatureEstimatorFn = Callable[
    [ModelAdapter, Prepared, HetaConfig, torch.Generator, bool], Float[Tensor, " ctx"]
]
"""``(adapter, request, config, generator, progress) -> S`` for one estimator."""


def hvp_chunk_for(adapter: ModelAdapter, ctx: int, config: HetaConfig) -> int:
    """``config.hvp_chunk``, or a chunk sized to ``config.hvp_memory_gb`` for this model/ctx."""
    if config.hvp_chunk is not None:
        return config.hvp_chunk
    return auto_chunk_size(
        n_layers=adapter.n_layers,
        n_heads=adapter.n_heads,
        d_model=adapter.d_model,
        d_mlp=adapter.d_mlp,
        ctx=ctx,
        dtype_bytes=torch.finfo(adapter.dtype).bits // 8,
        budget_gb=config.hvp_memory_gb,
    )


def _shared(
    adapter: ModelAdapter, req: Prepared, config: HetaConfig, gen: torch.Generator, progress: bool
) -> dict[str, Any]:
    """Options every estimator takes, read from ``config``."""
    return {
        "n_probes": config.n_probes,
        "generator": gen,
        "chunk_size": hvp_chunk_for(adapter, int(req.prefix.numel()), config),
        "strategy": config.hvp_strategy,
        "progress": progress,
    }


CURVATURE_ESTIMATORS: dict[str, CurvatureEstimatorFn] = {
    "exact": lambda a, r, c, g, p: compute_curvature(a, r, **_shared(a, r, c, g, p)),
    "row": lambda a, r, c, g, p: compute_row_curvature(a, r, **_shared(a, r, c, g, p)),
    "lowrank": lambda a, r, c, g, p: compute_lowrank_curvature(
        a, r, rank=c.lowrank_rank, scope=c.lowrank_scope, **_shared(a, r, c, g, p)
    ),
    "layer": lambda a, r, c, g, p: compute_layer_curvature(
        a, r, k=c.layer_k, **_shared(a, r, c, g, p)
    ),
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
