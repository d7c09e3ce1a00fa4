"""``SuiteSettings``: what one ``heta-lens eval`` run asks for (its flags are these fields),
and the datasets, suites and default methods those flags choose from. What fixes the numbers
of a run is :class:`~heta_lens.evals.settings.EvalSettings`
(:meth:`SuiteSettings.eval_settings`)."""

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from heta_lens.cluster import RUNNERS, RayOptions, ray_address_flag, ray_cpus_flag, runner_flag
from heta_lens.devices import device_flag, dtype_flag
from heta_lens.evals.metrics.causal_sites import check_sites
from heta_lens.evals.metrics.controls import CONTROLS
from heta_lens.evals.protocol import DEFAULT_PROTOCOL, PROTOCOLS
from heta_lens.evals.settings import (
    DEFAULT_METRICS,
    METRIC_GROUPS,
    EvalSettings,
    check_curated_filter,
)
from heta_lens.flags import comma_list, flag, positional
from heta_lens.presets import PRESETS

DATASETS: tuple[str, ...] = ("longra", "tellmewhy", "wikitext", "curated", "rephrasing")
"""Dataset names of ``heta-lens eval`` (each has a loader in :mod:`heta_lens.evals.datasets`)."""

SUITES: dict[str, tuple[str, tuple[str, ...]]] = {
    # suite -> (default dataset, default metric groups)
    "causal": ("longra", ("causal",)),
    "robustness": ("rephrasing", ("sensitivity",)),
    "decoding": ("tellmewhy", ("soft", "hard")),
}
"""Suites: a dataset and metric groups that go together (both can be overridden)."""

SEQUENCE_DATASETS: tuple[str, ...] = ("tellmewhy", "wikitext")
"""Datasets of greedy continuations (the decoding suite runs on these)."""

DEFAULT_METHODS: tuple[str, ...] = (
    "heta",
    "integrated_gradients",
    "attention_rollout",
    "occlusion",
)

SUITE_METHODS: dict[str, tuple[str, ...]] = {
    "causal": (*DEFAULT_METHODS, "heta_kl_only", "kl_occlusion"),
}
"""Suites whose default methods differ from :data:`DEFAULT_METHODS`. The causal suite adds
the KL-only HETA ablation and KL occlusion: two methods that, like occlusion, score a token by
removing it, but read the whole next-token distribution instead of log P(target)."""

_EVAL_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(EvalSettings)}
""":class:`EvalSettings`'s defaults, which the matching :class:`SuiteSettings` fields share."""


@dataclass(frozen=True, kw_only=True)
class SuiteSettings:
    """What one eval run asks for: ``heta-lens eval``'s flags, one field each.

    The flags of ``heta-lens eval`` are generated from these fields (:mod:`heta_lens.flags`),
    so every default lives here; :func:`heta_lens.evals.run_suite` runs them. The fields that
    fix the numbers go to :meth:`eval_settings` (recorded in ``OUT/run.json``); the others say
    where to read and write, and how many processes to use.

    Attributes:
        dataset: A dataset (:data:`DATASETS`) or a suite (:data:`SUITES`).
        on: The dataset of a suite (default: the suite's own).
        model: Model name, ``.gguf`` file or HF directory (:func:`heta_lens.load_model`).
        backend: ``bridge`` (TransformerBridge) or ``hooked`` (HookedTransformer).
        device: ``cpu``, ``cuda`` or ``auto`` (:func:`heta_lens.devices.resolve_device`).
        dtype: Weight dtype (``float32``, ``bfloat16``, ``float16``, ``float64``).
        methods: Registered method names, or ``("all",)`` for every registered method
            (``None``: the suite's :data:`SUITE_METHODS`, else :data:`DEFAULT_METHODS`).
        limit: Evaluate the first ``limit`` instances only.
        out: Output directory (default ``eval-results/<suite-dataset>-<model stem>``).
        data_dir: Data root (default :func:`heta_lens.models.default_data_dir`).
        data: A JSONL file in the curated schema (curated) or of rephrasing pairs.
        curated_filter: Curated: ``top10`` keeps the instances whose answer token the model
            ranks in its top 10, ``top1`` those where it is the model's greedy token
            (``top<k>`` in general; recorded in ``run.json``).
        n_draws: Mask draws per Soft-NS/NC score.
        seed: Base seed of every row's generator and of the bootstrap.
        metrics: Metric groups (default: the suite's, else :data:`DEFAULT_METRICS`).
        heta_preset: Preset of every HETA-family method (``None``: registry defaults).
        n_probes: Hutchinson probes of the HETA family (default: the preset's).
        mask: How hard-top-k and AOPC remove a token (``zero | mean | token:<id>``).
        beta_sweep: Add the β/γ sweep ``heta@beta=B`` to ``methods``.
        corruption: Intervention of the causal metrics.
        causal_draws: Noise draws per causal effect.
        causal_sites: Where the causal metrics patch (``embed``, ``mid``, ``resid:<L>``,
            ``edges``).
        sensitivity_delta: Relative embedding noise δ of the sensitivity metric.
        sensitivity_draws: Noisy reruns per method (≥ 2).
        protocol: Evaluation protocol of every method (:mod:`heta_lens.evals.protocol`).
        controls: Concentration controls of Soft-NS/NC (``rank``, ``matched``, ``perm``).
        matched_fraction: The ``matched`` control's effective fraction of tokens.
        grid: Decoding suite: the full 162-point sampling grid or 9 points.
        plots: Write PNG figures next to the summary.
        workers: Processes, or Ray actors with ``runner="ray"`` (each loads the model).
        threads: Torch threads of an in-process run (``None``: leave as is).
        runner: ``local`` (this machine) or ``ray`` (:mod:`heta_lens.evals.ray_runner`).
        ray_address: Head of a Ray cluster (``None``: start a one-machine Ray).
        ray_cpus: CPUs (torch threads) each Ray actor reserves.
    """

    dataset: str = positional(
        choices=(*DATASETS, *SUITES),
        help="a dataset, or a suite: 'causal' (Patch-Corr, Intervention@5, misattribution; "
        "default on longra) or 'robustness' (sensitivity, and rephrasing ρ on the "
        "active/passive pairs) or 'decoding' (metric invariance over the sampling grid; "
        "default on tellmewhy)",
    )
    on: str | None = flag(None, choices=DATASETS, help="dataset of a suite")
    model: str = flag("smollm2-135m", help="model name, .gguf or HF dir")
    backend: Literal["bridge", "hooked"] = flag(
        "bridge", choices=("bridge", "hooked"), parse=str, help="model backend"
    )
    device: str = device_flag()
    dtype: str = dtype_flag()
    methods: tuple[str, ...] | None = flag(
        None,
        parse=comma_list,
        help=f"comma-separated registry names or 'all' (default: {','.join(DEFAULT_METHODS)}; "
        "causal suite: also heta_kl_only,kl_occlusion)",
    )
    limit: int | None = flag(None, help="first N instances only")
    out: Path | None = flag(None, help="output dir (default eval-results/…)")
    data_dir: Path | None = flag(
        None, help="data root (default $HETA_LENS_DATA, else the data shipped with heta-lens)"
    )
    data: Path | None = flag(
        None, help="curated: any JSONL file in the curated schema (docs/curated_schema.md)"
    )
    curated_filter: str = flag(
        _EVAL_DEFAULTS["curated_filter"],
        help="curated: top10 keeps instances whose answer token the model ranks in its top 10 "
        "(default; the stored runs' filter), top1 those where it is the model's greedy token "
        "(top<k> in general)",
    )
    n_draws: int = flag(_EVAL_DEFAULTS["n_draws"], help="mask draws per Soft-NS/NC score")
    seed: int = flag(_EVAL_DEFAULTS["seed"], help="base seed of the rows and the bootstrap")
    metrics: tuple[str, ...] | None = flag(
        None,
        parse=comma_list,
        help=f"subset of {','.join(METRIC_GROUPS)} (default {','.join(DEFAULT_METRICS)}; "
        "causal suite: causal; robustness suite: sensitivity)",
    )
    heta_preset: str | None = flag(
        "fast",
        choices=tuple(PRESETS),
        help="curvature preset for every HETA-family method (default fast = row estimator, "
        "8 probes: Spearman 0.989 with full eq. 3 in benchmarks/RESULTS.md; 'full' is eq. 3)",
    )
    n_probes: int | None = flag(None, help="Hutchinson probes (HETA family)")
    mask: str = flag(
        _EVAL_DEFAULTS["mask"],
        help="how hard-top-k and AOPC remove a token: zero | mean | token:<id> (default zero)",
    )
    beta_sweep: bool = flag(
        False,
        help="add the β/γ sweep heta@beta=B (B in 0, .2, .5, .8, 1; γ = 1 − β) to --methods",
    )
    corruption: str = flag(
        _EVAL_DEFAULTS["corruption"],
        help="causal intervention: noise (Meng et al., 3σ) | zero | mean | token:<id>",
    )
    causal_draws: int = flag(_EVAL_DEFAULTS["causal_draws"], help="noise draws per causal effect")
    causal_sites: tuple[str, ...] = flag(
        _EVAL_DEFAULTS["causal_sites"],
        name="--causal-site",
        parse=comma_list,
        help="where the causal metrics patch, comma-separated: embed (input embedding; "
        "default) | mid (residual at layer n_layers//2) | resid:L | edges (attention edges "
        "i→readout, keys and values); non-embed keys are suffixed @site",
    )
    sensitivity_delta: float = flag(
        _EVAL_DEFAULTS["sensitivity_delta"], help="relative embedding noise δ"
    )
    sensitivity_draws: int = flag(
        _EVAL_DEFAULTS["sensitivity_draws"], help="noisy reruns per method (≥ 2)"
    )
    protocol: str = flag(
        DEFAULT_PROTOCOL,
        choices=tuple(PROTOCOLS),
        help="evaluation protocol of every method: standard (BOS/sink never masked nor "
        "normalised over; DSA over the paragraph) | legacy (the stored runs' rules)",
    )
    controls: tuple[str, ...] = flag(
        (),
        parse=comma_list,
        help=f"also compute Soft-NS/NC under these concentration controls ({','.join(CONTROLS)})",
    )
    matched_fraction: float = flag(
        _EVAL_DEFAULTS["matched_fraction"],
        help="matched control: temper every method to Σa² = 1/(fraction · n)",
    )
    grid: Literal["full", "small"] = flag(
        "full",
        choices=("full", "small"),
        parse=str,
        help="decoding suite: the paper's 162-point grid, or 9 points (temperature × top-p)",
    )
    plots: bool = flag(True, name="--no-plots", help="do not write PNG figures next to the summary")
    workers: int = flag(1, help="processes, or Ray workers with --runner ray (each loads a model)")
    threads: int | None = flag(None, help="torch threads (1 worker)")
    runner: str = runner_flag()
    ray_address: str | None = ray_address_flag()
    ray_cpus: int = ray_cpus_flag()

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS and self.dataset not in SUITES:
            valid = ", ".join((*DATASETS, *SUITES))
            raise ValueError(f"unknown dataset or suite {self.dataset!r}; valid: {valid}")
        if self.on is not None and self.suite is None:
            raise ValueError("--on selects the dataset of a suite (causal, robustness)")
        if self.on is not None and self.on not in DATASETS:
            raise ValueError(f"unknown dataset {self.on!r}; valid: {', '.join(DATASETS)}")
        check_sites(self.causal_sites)
        if self.runner not in RUNNERS:
            raise ValueError(f"unknown runner {self.runner!r}; valid: {', '.join(RUNNERS)}")
        if self.ray_address is not None and self.runner != "ray":
            raise ValueError("--ray-address goes with --runner ray")
        if self.suite == "decoding" and self.dataset_name not in SEQUENCE_DATASETS:
            raise ValueError("the decoding suite runs on a sequence dataset: tellmewhy, wikitext")
        check_curated_filter(self.curated_filter, self.dataset_name)

    @property
    def suite(self) -> str | None:
        """The suite, or ``None`` for a plain dataset run."""
        return self.dataset if self.dataset in SUITES else None

    @property
    def dataset_name(self) -> str:
        """The dataset the run reads (a suite's ``on``, or its default)."""
        if self.suite is None:
            return self.dataset
        return self.on or SUITES[self.suite][0]

    @property
    def name(self) -> str:
        """``<suite>-<dataset>`` or ``<dataset>``: the run's name."""
        return f"{self.suite}-{self.dataset_name}" if self.suite else self.dataset_name

    @property
    def out_dir(self) -> Path:
        """Where rows and summaries go."""
        return self.out or Path("eval-results") / f"{self.name}-{Path(self.model).stem}"

    @property
    def method_names(self) -> tuple[str, ...]:
        """The methods asked for: ``methods``, else the suite's, else the defaults."""
        if self.methods is not None:
            return self.methods
        return SUITE_METHODS.get(self.suite or "", DEFAULT_METHODS)

    @property
    def metric_groups(self) -> tuple[str, ...]:
        """The metric groups computed: ``metrics``, else the suite's, else the defaults."""
        if self.metrics is not None:
            return self.metrics
        return SUITES[self.suite][1] if self.suite else DEFAULT_METRICS

    def ray_options(self) -> RayOptions | None:
        """The Ray workers of a ``runner="ray"`` run (``None`` for the local runner)."""
        if self.runner != "ray":
            return None
        return RayOptions(
            address=self.ray_address, workers=self.workers, cpus=self.ray_cpus, device=self.device
        )

    def eval_settings(self) -> EvalSettings:
        """The settings that fix the run's numbers (validated; stored in ``run.json``)."""
        overrides = () if self.n_probes is None else (("n_probes", self.n_probes),)
        return EvalSettings(
            dataset=self.dataset_name,
            model=self.model,
            dtype=self.dtype,
            n_draws=self.n_draws,
            seed=self.seed,
            metrics=self.metric_groups,
            heta_preset=self.heta_preset,
            heta_overrides=overrides,
            mask=self.mask,
            corruption=self.corruption,
            causal_draws=self.causal_draws,
            causal_sites=self.causal_sites,
            sensitivity_delta=self.sensitivity_delta,
            sensitivity_draws=self.sensitivity_draws,
            protocol=self.protocol,
            controls=self.controls,
            matched_fraction=self.matched_fraction,
            curated_filter=self.curated_filter,
        )
