"""``HetaConfig``: every knob of a HETA attribution, and the paper's ablation presets."""

from dataclasses import asdict, dataclass
from typing import Any, Literal

GateMode = Literal["rollout", "attention", "full_rollout", "uniform"]
"""How the semantic gate's flow Φ is read (see :func:`heta_lens.gate.gate_from_capture`)."""

Normalization = Literal["sum", "max", "none"]
SinkPolicy = Literal["exclude", "keep"]
HvpStrategy = Literal["batched_grad", "replicate"]
KlStrategy = Literal["batched", "prefix"]
"""How the masked reruns of the information term are run (:mod:`heta_lens.information`)."""
LowRankScope = Literal["block", "global"]
WindowView = Literal["prefix", "window"]
"""HETA-WIN: what the model sees per window (see :mod:`heta_lens.windows`)."""
CurvatureEstimator = Literal["exact", "row", "lowrank", "layer"]
"""``exact``: eq. 3 (ctx·m HVPs); ``row``: Π_i H r with r over all blocks (m HVPs); ``lowrank``:
randomised range finder per token block (rank ``lowrank_rank``); ``layer``: eq. 3 w.r.t. the
residual stream entering layer L − ``layer_k`` (HETA-LS)."""

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

    The score is ``Attr_i = G_i · (β·S'_i + γ·I'_i)``, where ``G`` is the gate term, ``S'``/``I'``
    the normalised curvature and information terms (``HetaResult`` exposes all three).

    Attributes:
        beta: Weight β of the curvature term (paper default 0.5).
        gamma: Weight γ of the information term (paper default 0.5).
        n_probes: Rademacher probes m per token for the Hutchinson curvature estimate (eq. 3).
        seed: Seed of the probe generator (curvature is deterministic given the seed).
        mask: Masking scheme of the information term: ``"zero"`` (default: the token's input
            embedding is set to 0), ``"mean"`` (mean input embedding over the vocabulary) or
            ``"token:<id>"`` (embedding of token ``<id>``).
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
        sink: ``"exclude"`` (default): position 0 — the attention sink, which takes almost all
            gate mass in every model we measured — is left out of the gate term, which is
            renormalised over positions 1..target-1 (its raw gate value is still reported in
            ``gate``; its score is 0). ``"keep"``: the literal reading.
        hvp_strategy: How HVPs are batched (:mod:`heta_lens.hvp`). ``"batched_grad"`` (default):
            one forward and first backward, then double backwards vmapped over probes — 2–7×
            faster than ``"replicate"`` on SmolLM2 at 64 tokens (measured, 2-core CPU).
        hvp_chunk: HVPs per batched double-backward; ``None`` (default) sizes chunks to
            ``hvp_memory_gb`` (:func:`heta_lens.hvp.auto_chunk_size`).
        hvp_memory_gb: Activation-memory budget for one batched double backward.
        mask_chunk: Masked copies per batched forward in the information term.
        kl_strategy: How the masked copies run (:mod:`heta_lens.information`; same numbers):
            ``"prefix"`` (default) starts each chunk of reruns at its first masked position on
            top of the unmasked prefix's key/value cache (0.70–0.75× the time of
            ``"batched"`` on SmolLM2-135M at 64 tokens, 2 threads, bridge and HookedTransformer);
            ``"batched"`` reruns the whole prefix for every copy.
        curvature_estimator: Which curvature estimator (:data:`CurvatureEstimator`); ``"exact"``
            (eq. 3) is "full" HETA, the others are the paper's cheaper variants.
        lowrank_rank: Rank r of the ``"lowrank"`` estimator.
        lowrank_scope: ``"block"`` (default, the paper's per-token-block range finder:
            2·r·ctx HVPs) or ``"global"`` (one range finder over the whole Hessian, restricted
            to the diagonal blocks afterwards: 2·r HVPs).
        layer_k: k of the ``"layer"`` estimator (curvature w.r.t. ``resid_pre`` of layer L − k;
            k = n_layers is the embeddings).
        window: HETA-WIN window size W over the context (``None``: no windowing).
        window_overlap: Fraction of W shared by consecutive windows (paper: 0.5).
        window_view: ``"prefix"`` (default: the model always sees the full prefix; windows only
            change normalisation; same cost as full) or ``"window"`` (the model sees the anchor
            token, the window and the target: cheaper for long inputs, but each window explains
            a truncated prediction).
    """

    beta: float = 0.5
    gamma: float = 0.5
    n_probes: int = 8
    seed: int = 0
    mask: str = "zero"
    gate_mode: GateMode = "rollout"
    use_gate: bool = True
    use_curvature: bool = True
    use_information: bool = True
    normalization: Normalization = "sum"
    sink: SinkPolicy = "exclude"
    hvp_strategy: HvpStrategy = "batched_grad"
    hvp_chunk: int | None = None
    hvp_memory_gb: float = 4.0
    mask_chunk: int = 16
    kl_strategy: KlStrategy = "prefix"
    curvature_estimator: CurvatureEstimator = "exact"
    lowrank_rank: int = 64
    lowrank_scope: LowRankScope = "block"
    layer_k: int = 4
    window: int | None = None
    window_overlap: float = 0.5
    window_view: WindowView = "prefix"

    def __post_init__(self) -> None:
        if self.beta < 0 or self.gamma < 0:
            raise ValueError(
                f"beta and gamma must be >= 0; got beta={self.beta}, gamma={self.gamma}"
            )
        if self.n_probes < 1:
            raise ValueError(f"n_probes must be >= 1; got {self.n_probes}")
        if (self.hvp_chunk is not None and self.hvp_chunk < 1) or self.mask_chunk < 1:
            raise ValueError("hvp_chunk (or None) and mask_chunk must be >= 1")
        if self.hvp_memory_gb <= 0:
            raise ValueError(f"hvp_memory_gb must be > 0; got {self.hvp_memory_gb}")
        if self.gate_mode not in ("rollout", "attention", "full_rollout", "uniform"):
            raise ValueError(f"unknown gate_mode {self.gate_mode!r}")
        if self.normalization not in ("sum", "max", "none"):
            raise ValueError(f"unknown normalization {self.normalization!r}")
        if self.curvature_estimator not in ("exact", "row", "lowrank", "layer"):
            raise ValueError(f"unknown curvature_estimator {self.curvature_estimator!r}")
        if self.lowrank_scope not in ("block", "global"):
            raise ValueError(f"unknown lowrank_scope {self.lowrank_scope!r}")
        if self.lowrank_rank < 1 or self.layer_k < 1:
            raise ValueError("lowrank_rank and layer_k must be >= 1")
        if self.window is not None and self.window < 1:
            raise ValueError(f"window must be >= 1 or None; got {self.window}")
        if self.window_view not in ("prefix", "window"):
            raise ValueError(f"unknown window_view {self.window_view!r}")
        if not 0.0 <= self.window_overlap < 1.0:
            raise ValueError(f"window_overlap must be in [0, 1); got {self.window_overlap}")
        if self.hvp_strategy not in ("batched_grad", "replicate"):
            raise ValueError(f"unknown hvp_strategy {self.hvp_strategy!r}")
        if self.kl_strategy not in ("batched", "prefix"):
            raise ValueError(f"unknown kl_strategy {self.kl_strategy!r}")
        if self.sink not in ("exclude", "keep"):
            raise ValueError(f"unknown sink policy {self.sink!r}")
        if not (self.use_gate or self.use_curvature or self.use_information):
            raise ValueError("at least one of use_gate, use_curvature, use_information must be on")

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
        return cls(**{**presets[name], **overrides})

    @classmethod
    def literal(cls, **overrides: Any) -> "HetaConfig":
        """The paper read literally: unnormalised S and I, attention sink kept."""
        return cls(**{"normalization": "none", "sink": "keep", **overrides})

    def to_dict(self) -> dict[str, object]:
        """Plain-dict form (JSON-serialisable)."""
        return asdict(self)
