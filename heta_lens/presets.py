"""Named ``HetaConfig`` presets: full HETA and the paper's cheaper variants.

Each preset is a plain :class:`~heta_lens.HetaConfig`. A preset chooses *how* the curvature is
estimated (and whether windows are used), never *what* is computed: :func:`with_preset` is the
one rule, used by ``heta-lens attribute --preset``, the demo and ``heta-lens eval
--heta-preset``, that applies a preset to a method's config. Their cost and their agreement
with ``full`` are measured by ``heta-lens bench`` (see ``benchmarks/RESULTS.md``), not assumed.
"""

from dataclasses import replace
from typing import Any

from heta_lens.config import Exact, HetaConfig, LayerSampled, LowRank, RowBlock, Window

PRESETS: dict[str, HetaConfig] = {
    # eq. 3 exactly: ctx·m block HVPs.
    "full": HetaConfig(curvature=Exact()),
    # Appendix row-block mass Π_i H r with r over all blocks: m HVPs in total.
    "row": HetaConfig(curvature=RowBlock()),
    # HETA-LS: eq. 3 w.r.t. the residual stream entering layer L − 4.
    "LS": HetaConfig(curvature=LayerSampled(k=4)),
    # HETA-LR: rank-r range finder per token block (2·r·ctx HVPs: r = 4 costs what full does).
    "LR": HetaConfig(curvature=LowRank(rank=4)),
    # HETA-LR over the whole Hessian, rank 64, restricted to the diagonal blocks (128 HVPs).
    "LR-global": HetaConfig(curvature=LowRank(rank=64, scope="global")),
    # HETA-WIN: 50%-overlapping windows of 128 context tokens, each window seen on its own
    # (anchor token + window + target), so HVP and masked-rerun cost grow with W, not T.
    "WIN": HetaConfig(window=Window(size=128, overlap=0.5, view="window")),
    # Best measured cost/quality trade-off (benchmarks/RESULTS.md, section 5).
    "fast": HetaConfig(curvature=RowBlock(n_probes=8)),
    # Long inputs: `fast`'s estimator over HETA-WIN's windows (128 tokens, 50% overlap, each
    # seen on its own), so peak memory is that of one window whatever the length. A different
    # quantity from `fast` (each window explains a truncated prediction), for inputs where one
    # full-length HVP does not fit the HVP budget (on SmolLM2: 542 context tokens fit in 4 GB,
    # 2,048 need 27.5 GB; RESULTS.md §9).
    "fast-long": HetaConfig(
        curvature=RowBlock(n_probes=8), window=Window(size=128, overlap=0.5, view="window")
    ),
}


ESTIMATOR_FIELDS: tuple[str, ...] = ("curvature", "window")
"""The fields a preset sets on a method's config (the curvature estimator with its probe count,
and the windows); every other field (β, γ, which components, gate mode, sink, normalisation,
information options, which extra outputs are kept, ...) stays the method's. The curvature's
``interactions`` flag says what is kept, not how it is estimated, so it stays the method's
too."""


def with_preset(config: HetaConfig, name: str) -> HetaConfig:
    """``config`` with the estimator fields (:data:`ESTIMATOR_FIELDS`) of preset ``name``.

    Raises:
        ValueError: Unknown preset, or ``config`` keeps curvature interactions and the
            preset's estimator cannot give them.

    Examples:
        >>> cfg = with_preset(HetaConfig(beta=0.8, gamma=0.2, use_gate=False), "fast")
        >>> cfg.curvature, cfg.beta, cfg.use_gate
        (RowBlock(n_probes=8), 0.8, False)
    """
    chosen = preset(name)
    out = replace(config, **{field: getattr(chosen, field) for field in ESTIMATOR_FIELDS})
    return out.keeping(interactions=config.interactions)


def preset(name: str, **overrides: Any) -> HetaConfig:
    """The config of preset ``name`` with ``overrides`` applied (:meth:`HetaConfig.updated`:
    fields, typed parts or flat keywords such as ``n_probes=1``).

    Raises:
        ValueError: Unknown preset (the message lists the valid ones), or a bad override.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}")
    return PRESETS[name].updated(**overrides)
