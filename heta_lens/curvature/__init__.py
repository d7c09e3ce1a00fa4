"""The curvature term S: one module per estimator, dispatched on the config type.

- :mod:`~heta_lens.curvature.exact` — eq. 3 (:class:`~heta_lens.config.Exact`), and the
  pairwise interaction map its HVPs hold.
- :mod:`~heta_lens.curvature.row` — the appendix's row-block mass
  (:class:`~heta_lens.config.RowBlock`).
- :mod:`~heta_lens.curvature.lowrank` — HETA-LR (:class:`~heta_lens.config.LowRank`).
- :mod:`~heta_lens.curvature.layer` — HETA-LS (:class:`~heta_lens.config.LayerSampled`).
- :mod:`~heta_lens.curvature.hvp` — Hessian–vector products, never forming H.
- :mod:`~heta_lens.curvature.base` — probes drawn once, dispatch, the validate → guard shell.

A new estimator is a config type in :mod:`heta_lens.config` (added to ``Curvature``) and a
module here whose implementation is registered with ``@estimate.register``.
"""

from heta_lens.curvature.base import curvature_of, estimate, estimate_curvature, hvp_chunk_for
from heta_lens.curvature.exact import curvature_interactions, curvature_sensitivity
from heta_lens.curvature.layer import layer_curvature
from heta_lens.curvature.lowrank import lowrank_curvature
from heta_lens.curvature.row import row_curvature

__all__ = [
    "curvature_interactions",
    "curvature_of",
    "curvature_sensitivity",
    "estimate",
    "estimate_curvature",
    "hvp_chunk_for",
    "layer_curvature",
    "lowrank_curvature",
    "row_curvature",
]
