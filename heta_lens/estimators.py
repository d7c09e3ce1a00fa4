"""One entry point for the curvature term, dispatching on ``HetaConfig.curvature_estimator``."""

import torch
from jaxtyping import Float
from torch import Tensor

from heta_lens.config import HetaConfig
from heta_lens.curvature import compute_curvature
from heta_lens.hooks import ModelAdapter
from heta_lens.inputs import Prepared


def estimate_curvature(
    adapter: ModelAdapter, req: Prepared, *, config: HetaConfig, progress: bool = False
) -> Float[Tensor, " ctx"]:
    """The curvature term S of ``config`` for a validated request (inside the state guard).

    Probes come from ``torch.Generator().manual_seed(config.seed)``, so every estimator is
    deterministic under a seed.

    Raises:
        ValueError: An estimator that is not available.
    """
    generator = torch.Generator().manual_seed(config.seed)
    if config.curvature_estimator == "exact":
        return compute_curvature(
            adapter,
            req,
            n_probes=config.n_probes,
            generator=generator,
            chunk_size=config.hvp_chunk,
            strategy=config.hvp_strategy,
            progress=progress,
        )
    raise ValueError(f"curvature estimator {config.curvature_estimator!r} is not available")
