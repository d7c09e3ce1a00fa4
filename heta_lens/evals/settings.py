"""``EvalSettings``: everything that fixes the numbers of an eval run (saved with the run).
What one ``heta-lens eval`` run asks for (its flags) is
:class:`~heta_lens.evals.suite_settings.SuiteSettings`."""

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from heta_lens.config import HetaConfig
from heta_lens.config_flat import FLAT_FIELDS, with_flat
from heta_lens.devices import resolve_dtype
from heta_lens.evals.datasets.curated import DEFAULT_CURATED_FILTER, filter_top_k
from heta_lens.evals.metrics.causal import check_corruption
from heta_lens.evals.metrics.causal_sites import check_sites
from heta_lens.evals.metrics.controls import DEFAULT_MATCHED_FRACTION, check_controls
from heta_lens.evals.protocol import DEFAULT_PROTOCOL, STORED_DEFAULT, get_protocol
from heta_lens.presets import preset, with_preset

METRIC_GROUPS: tuple[str, ...] = ("soft", "hard", "aopc", "alignment", "causal", "sensitivity")
"""``soft``: Soft-NS/NC (ReAGent recipe); ``hard``: ``hard_topk_kl`` (official HETA code's
top-k masking KL); ``aopc``: deletion/insertion curves; ``alignment``: DSA and F1 (only for
instances with a ``support`` region, i.e. the curated set); ``causal``: Patch-Corr,
Intervention@5 and misattribution (:mod:`heta_lens.evals.metrics.causal`); ``sensitivity``:
score spread under embedding noise (:mod:`heta_lens.evals.metrics.sensitivity`; reruns every
method ``sensitivity_draws`` times)."""

DEFAULT_METRICS: tuple[str, ...] = ("soft", "hard", "aopc", "alignment")
"""What ``heta-lens eval DATASET`` computes unless ``--metrics`` says otherwise."""


@dataclass(frozen=True, kw_only=True)
class EvalSettings:
    """The settings of one eval run. Changing any of these changes the numbers.

    Attributes:
        dataset: Dataset name (``longra``, ``tellmewhy``, ``wikitext``, ``curated``).
        model: Model name or path as given to :func:`heta_lens.load_model`.
        dtype: The model's weight dtype (``float32``; a half-precision model is computed on
            in float32, :mod:`heta_lens.hooks.precision`). The device is not recorded: it
            changes round-off only.
        n_draws: Mask draws per Soft-NS/NC score (ReAGent uses 1).
        seed: Base seed; each row's generator is seeded from (seed, uid, target, method).
        metrics: Metric groups to compute (:data:`METRIC_GROUPS`).
        heta_preset: Preset whose curvature/window fields replace those of every HETA-family
            method (``None``: registry defaults, i.e. exact eq. 3 with 8 probes).
        heta_overrides: Further ``HetaConfig`` field overrides for the HETA family.
        aopc_fractions: Deletion/insertion steps (fractions of the context).
        hard_fractions: Top-k fractions of ``hard_topk_kl``.
        mask: How a token is removed by the perturbation metrics (``mask_rows`` scheme).
        corruption: Intervention of the causal metrics (``noise`` à la Meng et al., or a
            ``mask_rows`` scheme).
        noise_scale: Causal noise scale c (ε ~ N(0, (c·σ_embedding)²)).
        causal_draws: Noise draws averaged per causal effect.
        causal_sites: Where the causal metrics patch (module ``evals.metrics.causal_sites``):
            ``embed`` (row keys ``patch_corr``, ...; the only site of the stored runs),
            ``mid``, ``resid:<layer>``, ``edges`` (row keys ``patch_corr@<site>``).
        sensitivity_delta: Relative embedding-noise size δ of the sensitivity metric.
        sensitivity_draws: Noisy reruns per method for the sensitivity metric.
        protocol: The evaluation protocol of every method (:mod:`heta_lens.evals.protocol`):
            ``standard`` (default of a new run) or ``legacy`` (what a ``run.json`` without
            this entry was computed under, :func:`stored_defaults`).
        controls: Concentration controls (:mod:`heta_lens.evals.metrics.controls`) under
            which Soft-NS/NC are also computed (row keys ``soft_ns@<c>``, ``soft_nc@<c>``).
        matched_fraction: The ``matched`` control's target: Σa² = 1/(fraction · n).
        curated_filter: Which curated rows the run keeps
            (:func:`~heta_lens.evals.datasets.curated.filter_top_k`): ``top10`` (the answer's
            first token in the model's top 10; default, and what a ``run.json`` without this
            entry was computed under), ``top1`` (it is the model's greedy token), ``top<k>``.
            Only ``curated`` runs may set another value than the default.
    """

    dataset: str
    model: str
    dtype: str = "float32"
    n_draws: int = 4
    seed: int = 0
    metrics: tuple[str, ...] = DEFAULT_METRICS
    heta_preset: str | None = None
    heta_overrides: tuple[tuple[str, Any], ...] = ()
    aopc_fractions: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    hard_fractions: tuple[float, ...] = (0.1, 0.2, 0.3)
    mask: str = "zero"
    corruption: str = "noise"
    noise_scale: float = 3.0
    causal_draws: int = 4
    causal_sites: tuple[str, ...] = ("embed",)
    sensitivity_delta: float = 0.05
    sensitivity_draws: int = 3
    protocol: str = DEFAULT_PROTOCOL
    controls: tuple[str, ...] = ()
    matched_fraction: float = DEFAULT_MATCHED_FRACTION
    curated_filter: str = DEFAULT_CURATED_FILTER

    def __post_init__(self) -> None:
        resolve_dtype(self.dtype)  # raises on an unknown or non-floating dtype
        check_curated_filter(self.curated_filter, self.dataset)
        get_protocol(self.protocol)  # raises on an unknown name
        check_controls(self.controls)
        if self.controls and "soft" not in self.metrics:
            raise ValueError("controls rescore Soft-NS/NC: add 'soft' to the metric groups")
        if not 0.0 < self.matched_fraction <= 1.0:
            raise ValueError(f"matched_fraction must lie in (0, 1]; got {self.matched_fraction}")
        if self.n_draws < 1:
            raise ValueError(f"n_draws must be >= 1; got {self.n_draws}")
        if self.causal_draws < 1:
            raise ValueError(f"causal_draws must be >= 1; got {self.causal_draws}")
        if self.sensitivity_draws < 2:
            raise ValueError(f"sensitivity_draws must be >= 2; got {self.sensitivity_draws}")
        if self.noise_scale <= 0 or self.sensitivity_delta < 0:
            raise ValueError("noise_scale must be > 0 and sensitivity_delta >= 0")
        check_corruption(self.corruption)
        check_sites(self.causal_sites)
        unknown = [m for m in self.metrics if m not in METRIC_GROUPS]
        if unknown:
            valid = ", ".join(METRIC_GROUPS)
            raise ValueError(f"unknown metric group(s) {unknown}; valid: {valid}")
        if self.mask not in ("zero", "mean") and not re.fullmatch(r"token:\d+", self.mask):
            raise ValueError(f"unknown mask {self.mask!r}; valid: zero, mean, token:<id>")
        if self.heta_preset is not None:
            preset(self.heta_preset)  # raises on an unknown name
        bad = [k for k, _ in self.heta_overrides if k not in FLAT_FIELDS]
        if bad:
            raise ValueError(f"unknown HetaConfig field(s) in heta overrides: {bad}")

    def heta_config(self, base: HetaConfig) -> HetaConfig:
        """``base`` (a registered HETA-family default) with the run's preset and overrides (flat
        keywords, :func:`heta_lens.config_flat.with_flat`)."""
        config = base if self.heta_preset is None else with_preset(base, self.heta_preset)
        return with_flat(config, **dict(self.heta_overrides))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["heta_overrides"] = dict(self.heta_overrides)
        return out


def check_curated_filter(name: str, dataset: str) -> None:
    """Raise ``ValueError`` unless ``name`` is a curated filter that ``dataset`` can take (any
    ``top<k>`` for ``curated``, only the default for the other datasets, which it does not
    filter)."""
    filter_top_k(name)
    if name != DEFAULT_CURATED_FILTER and dataset != "curated":
        raise ValueError(
            f"the curated filter {name!r} selects curated instances; dataset {dataset!r} "
            "is not filtered by it (leave --curated-filter at its default)"
        )


def stored_defaults() -> dict[str, Any]:
    """What a setting missing from a stored ``run.json`` stands for (JSON form).

    A setting added after a run was stored counts as its default value (``curated_filter``:
    ``top10``, the filter every stored curated run was computed under), except ``protocol``:
    runs stored before protocols existed were computed under ``legacy``
    (:data:`heta_lens.evals.protocol.STORED_DEFAULT`), whatever the default of new runs is.
    """
    defaults = EvalSettings(dataset="", model="").to_dict()
    defaults["protocol"] = STORED_DEFAULT
    return json.loads(json.dumps(defaults))


def row_seed(seed: int, uid: str, target: int, method: str) -> int:
    """A stable 63-bit seed for one row (independent of run order and process)."""
    digest = hashlib.sha256(f"{seed}|{uid}|{target}|{method}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
