"""The typed parts of :class:`heta_lens.config.HetaConfig`: the four curvature estimators,
the information term's options, windows and HVP batching (re-exported by
:mod:`heta_lens.config`, where they are documented together).

Examples:
    >>> LowRank(rank=8).estimator, Window(size=64).overlap
    ('lowrank', 0.5)
"""

from dataclasses import dataclass
from typing import ClassVar, Literal

HvpStrategy = Literal["batched_grad", "replicate"]
KlStrategy = Literal["batched", "prefix"]
"""How the masked reruns of the information term are run (:mod:`heta_lens.information`)."""
LowRankScope = Literal["block", "global"]
WindowView = Literal["prefix", "window"]
"""HETA-WIN: what the model sees per window (see :mod:`heta_lens.windows`)."""
CurvatureEstimator = Literal["exact", "row", "lowrank", "layer"]
"""The names of the four curvature types (``Exact.estimator`` etc.), as the CLI and JSON spell
them."""


def _one_of(name: str, value: object, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")


def _at_least_one(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1; got {value}")


@dataclass(frozen=True, kw_only=True)
class Exact:
    """Eq. 3: S_i = (1/m) Σ_k ‖Π_i H Π_i r_k‖₁ (ctx·m HVPs; :mod:`heta_lens.curvature.exact`).

    Attributes:
        n_probes: Rademacher probes m per token.
        interactions: Also keep the pairwise curvature map X[i, j] = (1/m) Σ_k
            ‖Π_i H Π_j r_{k,j}‖₁ (``HetaResult.interactions``, ``[ctx, ctx]``, diagonal = S),
            read off the same HVPs: no extra HVP, ctx² memory
            (:func:`heta_lens.curvature.exact.curvature_interactions`).
    """

    estimator: ClassVar[CurvatureEstimator] = "exact"
    n_probes: int = 8
    interactions: bool = False

    def __post_init__(self) -> None:
        _at_least_one(n_probes=self.n_probes)


@dataclass(frozen=True, kw_only=True)
class RowBlock:
    """The appendix's row-block mass (1/m) Σ_k ‖Π_i H r_k‖₁ (m HVPs; :mod:`~.curvature.row`).

    Attributes:
        n_probes: Rademacher probes m (each over all token blocks).
    """

    estimator: ClassVar[CurvatureEstimator] = "row"
    n_probes: int = 8

    def __post_init__(self) -> None:
        _at_least_one(n_probes=self.n_probes)


@dataclass(frozen=True, kw_only=True)
class LowRank:
    """HETA-LR: eq. 3 on a randomised range finder of the Hessian (:mod:`~.curvature.lowrank`).

    Attributes:
        rank: Sketch rank r (clipped to d_model per block, or ctx·d_model for ``"global"``).
        scope: ``"block"`` (the paper's: one sketch per token block, 2·r·ctx HVPs) or
            ``"global"`` (one sketch of the whole Hessian, restricted to the diagonal blocks
            afterwards: 2·r HVPs).
        n_probes: Rademacher probes m applied to the sketched blocks.

    No pairwise interaction map: ``"block"`` sketches only the diagonal blocks H_ii;
    ``"global"`` could give an approximate one, Π_i Q B Qᵀ Π_j, from its sketch without more
    HVPs, which is not implemented (use :class:`Exact` with ``interactions=True``).
    """

    estimator: ClassVar[CurvatureEstimator] = "lowrank"
    rank: int = 64
    scope: LowRankScope = "block"
    n_probes: int = 8

    def __post_init__(self) -> None:
        _at_least_one(rank=self.rank, n_probes=self.n_probes)
        _one_of("low-rank scope", self.scope, ("block", "global"))


@dataclass(frozen=True, kw_only=True)
class LayerSampled:
    """HETA-LS: eq. 3 w.r.t. the residual stream entering layer L − k (:mod:`~.curvature.layer`).

    Attributes:
        k: Number of final layers the curvature is taken through (clipped to L; k = L is the
            embeddings).
        n_probes: Rademacher probes m per token.
        interactions: Also keep the pairwise curvature map w.r.t. that residual stream,
            (1/m) Σ_k ‖Π_i H^Z Π_j r_{k,j}‖₁ (as :class:`Exact`'s, same HVPs, diagonal = S^LS).
    """

    estimator: ClassVar[CurvatureEstimator] = "layer"
    k: int = 4
    n_probes: int = 8
    interactions: bool = False

    def __post_init__(self) -> None:
        _at_least_one(k=self.k, n_probes=self.n_probes)


Curvature = Exact | RowBlock | LowRank | LayerSampled
"""One of the four curvature estimators; the type selects the implementation."""

CURVATURE_TYPES: dict[str, type[Curvature]] = {
    t.estimator: t for t in (Exact, RowBlock, LowRank, LayerSampled)
}
"""Estimator name → its config type."""

PAIRWISE_TYPES: tuple[type[Curvature], ...] = (Exact, LayerSampled)
"""The estimators that can keep the pairwise interaction map (their ``interactions`` field):
their block HVPs H Π_j r_j already hold Π_i H Π_j r_j for every i."""


@dataclass(frozen=True, kw_only=True)
class Information:
    """The information term I: KL between the target distributions with and without token i.

    Attributes:
        mask: ``"zero"`` (the token's input embedding is set to 0), ``"mean"`` (mean input
            embedding over the vocabulary) or ``"token:<id>"`` (embedding of token ``<id>``).
        strategy: How the masked copies run (same numbers): ``"prefix"`` starts each chunk of
            reruns at its first masked position on top of the unmasked prefix's key/value cache
            (self-checked per model, :mod:`heta_lens.hooks.fastpath`); ``"batched"`` reruns the
            whole prefix for every copy.
        chunk: Masked copies per batched forward (at most; fewer when ``memory_gb`` asks).
        memory_gb: Activation-memory budget for one batched forward of masked copies: long
            inputs run fewer than ``chunk`` copies at a time
            (:func:`heta_lens.information.rerun_chunk`; same numbers up to round-off).
    """

    mask: str = "zero"
    strategy: KlStrategy = "prefix"
    chunk: int = 16
    memory_gb: float = 2.0

    def __post_init__(self) -> None:
        _one_of("KL strategy", self.strategy, ("batched", "prefix"))
        _at_least_one(chunk=self.chunk)
        if self.memory_gb <= 0:
            raise ValueError(f"memory_gb must be > 0; got {self.memory_gb}")


@dataclass(frozen=True, kw_only=True)
class Window:
    """HETA-WIN: overlapping windows over the context (:mod:`heta_lens.windows`).

    Attributes:
        size: Window size W in context tokens.
        overlap: Fraction of W shared by consecutive windows (paper: 0.5).
        view: ``"prefix"`` (the model always sees the full prefix; windows only change
            normalisation; same cost as no window) or ``"window"`` (the model sees the anchor
            token, the window and the target: cheaper for long inputs, but each window explains
            a truncated prediction).
    """

    size: int
    overlap: float = 0.5
    view: WindowView = "prefix"

    def __post_init__(self) -> None:
        _at_least_one(size=self.size)
        if not 0.0 <= self.overlap < 1.0:
            raise ValueError(f"window overlap must be in [0, 1); got {self.overlap}")
        _one_of("window view", self.view, ("prefix", "window"))


@dataclass(frozen=True, kw_only=True)
class Hvp:
    """How Hessian–vector products are batched (:mod:`heta_lens.curvature.hvp`; same numbers).

    Attributes:
        strategy: ``"batched_grad"`` (one forward and first backward, double backwards vmapped
            over probes) or ``"replicate"`` (the point replicated along a batch axis).
        chunk: HVPs per batched double backward; ``None`` sizes chunks to ``memory_gb``
            (:func:`heta_lens.curvature.hvp.auto_chunk_size`).
        memory_gb: Activation-memory budget for one batched double backward. ``None``
            (default): 3/4 of the memory free on the model's device when the call starts
            (:func:`heta_lens.devices.auto_budget_gb`), so a long context runs wherever it
            fits and is refused (``HvpBudgetError``) before anything runs where it does not.
            A number makes the chunking independent of the machine (it never changes the
            result, only peak memory, speed, and whether the call is refused).
    """

    strategy: HvpStrategy = "batched_grad"
    chunk: int | None = None
    memory_gb: float | None = None

    def __post_init__(self) -> None:
        _one_of("HVP strategy", self.strategy, ("batched_grad", "replicate"))
        if self.chunk is not None:
            _at_least_one(chunk=self.chunk)
        if self.memory_gb is not None and self.memory_gb <= 0:
            raise ValueError(f"memory_gb must be > 0 or None (automatic); got {self.memory_gb}")
