"""``HetaConfig`` and its typed parts: every knob of a HETA attribution, each where it applies.

A field that only means something for one variant lives on that variant's type: the rank of
the low-rank estimator on :class:`LowRank`, k of the layer-restricted one on
:class:`LayerSampled`, the window size on :class:`Window`. So an impossible combination (a rank
for the exact estimator, an overlap without windows) cannot be written.

Examples:
    >>> cfg = HetaConfig(beta=0.8, curvature=LowRank(rank=8), window=Window(size=64))
    >>> cfg.curvature.estimator, cfg.curvature.rank, cfg.window.overlap
    ('lowrank', 8, 0.5)
"""

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from heta_lens.config_parts import (
    CURVATURE_TYPES,
    PAIRWISE_TYPES,
    Curvature,
    CurvatureEstimator,
    Exact,
    Hvp,
    HvpStrategy,
    Information,
    KlStrategy,
    LayerSampled,
    LowRank,
    LowRankScope,
    RowBlock,
    Window,
    WindowView,
    _one_of,
)

__all__ = [
    "ABLATIONS",
    "CURVATURE_TYPES",
    "PAIRWISE_TYPES",
    "Curvature",
    "CurvatureEstimator",
    "Exact",
    "GateMode",
    "HetaConfig",
    "Hvp",
    "HvpStrategy",
    "Information",
    "KlStrategy",
    "LayerSampled",
    "LowRank",
    "LowRankScope",
    "Mix",
    "Normalization",
    "RowBlock",
    "SinkPolicy",
    "Window",
    "WindowView",
]

GateMode = Literal["rollout", "attention", "full_rollout", "uniform"]
"""How the semantic gate's flow Φ is read (see :func:`heta_lens.gate.gate_from_capture`)."""

Normalization = Literal["sum", "max", "none"]
Mix = Literal["additive", "geometric", "rank"]
"""How the normalised terms are mixed (:func:`heta_lens.scoring.combine` defines each)."""
SinkPolicy = Literal["exclude", "keep"]

ABLATIONS: tuple[str, ...] = (
    "full",
    "transition_only",
    "hessian_only",
    "kl_only",
    "no_gate",
    "uniform_gate",
)
"""The paper's six HETA configurations, each removing exactly one ingredient (see
:meth:`HetaConfig.ablation`)."""


@dataclass(frozen=True, kw_only=True)
class HetaConfig:
    """Configuration of one HETA attribution.

    The score is ``Attr_i = G_i · (β·S'_i + γ·I'_i)`` (``mix="additive"``), where ``G`` is the
    gate term, ``S'``/``I'`` the normalised curvature and information terms (``HetaResult``
    exposes all three).

    Attributes:
        beta: Weight β of the curvature term (paper default 0.5).
        gamma: Weight γ of the information term (paper default 0.5).
        seed: Seed of the probe generator (curvature is deterministic given the seed).
        gate_mode: Reading of the flow Φ: ``"rollout"`` (default; rollout of the layers above
            l ending at the target), ``"attention"`` (no rollout: attention of the target row
            only), ``"full_rollout"`` (also rolled down through layers below l to input tokens),
            ``"uniform"`` (constant flow: value norms only).
        use_gate: Multiply by the gate term (``False``: ablation "no gate").
        use_curvature: Include β·S' (``False`` skips the HVPs entirely).
        use_information: Include γ·I' (``False`` skips the masked reruns).
        normalization: Put S and I on a common scale before mixing: ``"sum"`` (default; each
            divided by its sum over ctx, so each is a distribution and β, γ are its shares),
            ``"max"`` (divided by the max) or ``"none"`` (the literal, unnormalised reading).
        mix: How S' and I' are mixed inside the bracket (:func:`heta_lens.scoring.combine`):
            ``"additive"`` (default, the paper: β·S' + γ·I'), ``"geometric"`` (weighted
            geometric mean (S'^β·I'^γ)^(1/(β+γ)): a token scores high only where both terms
            do, and a flat term rescales the other instead of spreading its mass) or
            ``"rank"`` (β·R(S') + γ·R(I'), R the term's ranks over the positions the gate
            keeps, as a distribution: both terms get the same profile, only their orders
            count).
        sink: ``"exclude"`` (default): position 0 — the attention sink, which takes almost all
            gate mass in every model we measured — is left out of the gate term, which is
            renormalised over positions 1..target-1 (its raw gate value is still reported in
            ``gate``; its score is 0). ``"keep"``: the literal reading.
        curvature: The curvature estimator and its own options (:data:`Curvature`; default
            :class:`Exact`, "full" HETA).
        information: Masking and rerun options of the information term.
        window: HETA-WIN windows (``None``: no windowing).
        hvp: HVP batching options (change speed and memory, not the numbers).
        gate_by_head: Also keep each attention head's term of the gate
            (``HetaResult.gate_by_head``, ``[layer, head_index, ctx]``, summing to ``gate``;
            :func:`heta_lens.gate.gate_by_head_from_capture`): no extra forward,
            n_layers·n_heads·ctx memory. Like the curvature's ``interactions`` it is a
            full-prefix output, refused in HETA-WIN's ``"window"`` view.
    """

    beta: float = 0.5
    gamma: float = 0.5
    seed: int = 0
    gate_mode: GateMode = "rollout"
    use_gate: bool = True
    use_curvature: bool = True
    use_information: bool = True
    normalization: Normalization = "sum"
    mix: Mix = "additive"
    sink: SinkPolicy = "exclude"
    curvature: Curvature = field(default_factory=Exact)
    information: Information = field(default_factory=Information)
    window: Window | None = None
    hvp: Hvp = field(default_factory=Hvp)
    gate_by_head: bool = False

    def __post_init__(self) -> None:
        if self.beta < 0 or self.gamma < 0:
            raise ValueError(
                f"beta and gamma must be >= 0; got beta={self.beta}, gamma={self.gamma}"
            )
        _one_of("gate_mode", self.gate_mode, ("rollout", "attention", "full_rollout", "uniform"))
        _one_of("normalization", self.normalization, ("sum", "max", "none"))
        _one_of("mix", self.mix, ("additive", "geometric", "rank"))
        if self.mix == "geometric" and self.beta + self.gamma <= 0:
            raise ValueError("mix='geometric' needs beta + gamma > 0")
        _one_of("sink policy", self.sink, ("exclude", "keep"))
        for name, kind in (
            ("curvature", Curvature),
            ("information", Information),
            ("window", Window | None),
            ("hvp", Hvp),
        ):
            if not isinstance(getattr(self, name), kind):
                raise TypeError(
                    f"HetaConfig.{name} must be {kind}; got {type(getattr(self, name)).__name__}"
                )
        if not (self.use_gate or self.use_curvature or self.use_information):
            raise ValueError("at least one of use_gate, use_curvature, use_information must be on")
        if self.interactions and not self.use_curvature:
            raise ValueError("curvature interactions need use_curvature=True")

    @property
    def interactions(self) -> bool:
        """Whether the curvature estimator keeps the pairwise interaction map."""
        return bool(getattr(self.curvature, "interactions", False))

    @classmethod
    def ablation(cls, name: str, **overrides: Any) -> "HetaConfig":
        """The paper's ablations, each removing one ingredient of ``G·(βS' + γI')``.

        - ``full``: everything.
        - ``transition_only``: the gate alone (``G``).
        - ``hessian_only``: ``G·S'`` (information term dropped).
        - ``kl_only``: ``G·I'`` (curvature term dropped).
        - ``no_gate``: ``β·S' + γ·I'``.
        - ``uniform_gate``: the gate's attention flow replaced by a constant, so the gate keeps
          only its value-norm factor Σ_{l,h} ‖V_i W_O‖₁ (a constant gate would only rescale
          ``no_gate``, so we read "uniform" as uniform flow).

        Raises:
            ValueError: Unknown ablation name (the message lists the valid ones).
        """
        presets: dict[str, dict[str, Any]] = {
            "full": {},
            "transition_only": {"use_curvature": False, "use_information": False},
            "hessian_only": {"use_information": False},
            "kl_only": {"use_curvature": False},
            "no_gate": {"use_gate": False},
            "uniform_gate": {"gate_mode": "uniform"},
        }
        if name not in presets:
            raise ValueError(f"unknown ablation {name!r}; valid: {', '.join(ABLATIONS)}")
        return cls(**presets[name]).updated(**overrides)

    @classmethod
    def literal(cls, **overrides: Any) -> "HetaConfig":
        """The paper read literally: unnormalised S and I, attention sink kept."""
        return cls(normalization="none", sink="keep").updated(**overrides)

    @classmethod
    def flat(cls, **fields: Any) -> "HetaConfig":
        """A config from the flat keywords of heta-lens ≤ 0.1 (:mod:`heta_lens.config_flat`).

        Examples:
            >>> HetaConfig.flat(curvature_estimator="layer", layer_k=2, n_probes=4).curvature
            LayerSampled(k=2, n_probes=4, interactions=False)
        """
        return cls().updated(**fields)

    def updated(self, **changes: Any) -> "HetaConfig":
        """This config with ``changes``: fields, typed parts, or the flat keywords of
        :func:`heta_lens.config_flat.with_flat` (``n_probes=2``, ``window=64``, ...).

        Raises:
            ValueError: An unknown keyword, or one that does not apply to the result.
        """
        from heta_lens.config_flat import with_flat

        return with_flat(self, **changes)

    def with_probes(self, n_probes: int) -> "HetaConfig":
        """This config with ``n_probes`` Hutchinson probes in its curvature estimator."""
        return replace(self, curvature=replace(self.curvature, n_probes=n_probes))

    def keeping(self, *, gate_by_head: bool = False, interactions: bool = False) -> "HetaConfig":
        """This config also keeping the per-head gate and/or the curvature interaction map
        (``False`` leaves a setting as it is).

        Raises:
            ValueError: ``interactions`` with an estimator that cannot give them (row-block,
                low-rank), or with the curvature term switched off.
        """
        config = replace(self, gate_by_head=True) if gate_by_head else self
        if not interactions:
            return config
        if not isinstance(config.curvature, PAIRWISE_TYPES):
            raise ValueError(
                f"the {config.curvature.estimator!r} curvature estimator cannot give pairwise "
                "interactions; use the exact (or layer) estimator"
            )
        return replace(config, curvature=replace(config.curvature, interactions=True))

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON-serialisable); the curvature dict names its ``estimator``."""
        out = asdict(self)
        out["curvature"] = {"estimator": self.curvature.estimator, **out["curvature"]}
        return out
