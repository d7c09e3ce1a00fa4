"""Summary tables of an eval run: means with 95% bootstrap intervals, markdown and CSV.

Unit of resampling: the instance. A sequence-level prompt contributes several targets, which
are not independent, so each metric is first averaged over an instance's targets and the
bootstrap resamples instances (a cluster bootstrap). Soft-NS/NC are reported as ReAGent does,
ln(mean over instances of metric(method) / mean of metric(random)), with a paired bootstrap
interval (the same resampled instances in numerator and denominator); 0 means no better than
the random attribution. Soft-NS/NC under a concentration control (row keys
``soft_ns@<control>``, :mod:`heta_lens.evals.metrics.controls`) are log ratios against the
random baseline under the same control, in columns after the recipe's own. The causal
metrics at a site other than ``embed`` (row keys ``patch_corr@edges``, ...,
:mod:`heta_lens.evals.metrics.causal_sites`) are means like their ``embed`` columns, placed
right after them. The target-side
metrics (row keys ``*_logp``, :mod:`heta_lens.evals.metrics.target`: the same perturbations read
on log p(target)) follow their full-distribution siblings: ``soft_ns_logp`` / ``soft_nc_logp``
as log ratios against the random baseline, the ``hard_*_logp`` and ``aopc_*_logp`` areas as
means. A column appears only when some row holds its key, so rows stored before a metric
existed summarise as they did.
"""

import csv
import io
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from heta_lens.evals.convergence import unconverged
from heta_lens.evals.evaluate import RANDOM
from heta_lens.evals.metrics import Interval, bootstrap_ci, bootstrap_log_ratio
from heta_lens.evals.metrics.controls import CONTROLS

LOG_RATIO_METRICS: tuple[str, ...] = ("soft_ns", "soft_nc", "soft_ns_logp", "soft_nc_logp")
MEAN_METRICS: tuple[str, ...] = (
    "hard_nc",
    "hard_ns",
    "hard_nc_logp",
    "hard_ns_logp",
    "aopc_deletion",
    "aopc_insertion",
    "aopc_deletion_logp",
    "aopc_insertion_logp",
    "dsa",
    "dsa_coarse",
    "f1",
    "patch_corr",
    "intervention_at_5",
    "misattribution",
    "sensitivity",
)
CAUSAL_METRICS: tuple[str, ...] = ("patch_corr", "intervention_at_5", "misattribution")
"""The causal metrics, which a run computes once per site (``@site`` keys past ``embed``)."""
HEADERS: dict[str, str] = {
    "soft_ns": "Soft-NS ln-ratio",
    "soft_nc": "Soft-NC ln-ratio",
    "soft_ns_logp": "Soft-NS log p(t) ln-ratio",
    "soft_nc_logp": "Soft-NC log p(t) ln-ratio",
    "hard_nc": "hard-top-k NC (KL)",
    "hard_ns": "hard-top-k NS (−KL)",
    "hard_nc_logp": "hard-top-k NC (Δlog p(t))",
    "hard_ns_logp": "hard-top-k NS (Δlog p(t))",
    "aopc_deletion": "AOPC deletion",
    "aopc_insertion": "AOPC insertion",
    "aopc_deletion_logp": "AOPC deletion (log p(t))",
    "aopc_insertion_logp": "AOPC insertion (log p(t))",
    "dsa": "DSA",
    "dsa_coarse": "DSA coarse",
    "f1": "F1",
    "patch_corr": "Patch-Corr",
    "intervention_at_5": "Intervention@5 (Δlog P)",
    "misattribution": "Misattribution",
    "sensitivity": "Sensitivity",
}


def is_log_ratio(metric: str) -> bool:
    """Whether ``metric`` is reported as a log ratio (Soft-NS/NC, under a control or not)."""
    return metric.split("@", 1)[0] in LOG_RATIO_METRICS


def header(metric: str) -> str:
    """The column title of ``metric`` (``Soft-NC ln-ratio @rank`` for a control's)."""
    base, _, control = metric.partition("@")
    return HEADERS[base] + (f" @{control}" if control else "")


def log_ratio_metrics(keys: set[str]) -> tuple[str, ...]:
    """The recipe's Soft-NS/NC and their target-side versions, then each control's (in
    :data:`CONTROLS` order) in ``keys``."""
    controlled = tuple(f"{m}@{c}" for c in CONTROLS for m in LOG_RATIO_METRICS)
    return (*LOG_RATIO_METRICS, *(m for m in controlled if m in keys))


def mean_metrics(keys: set[str]) -> tuple[str, ...]:
    """:data:`MEAN_METRICS`, with each causal site's keys in ``keys`` after the ``embed`` ones
    (sites in name order, each as Patch-Corr, Intervention@5, Misattribution).

    Examples:
        >>> out = mean_metrics({"patch_corr", "patch_corr@mid", "misattribution@edges"})
        >>> i = out.index("misattribution")
        >>> out[i : i + 3]
        ('misattribution', 'misattribution@edges', 'patch_corr@mid')
    """
    sites = sorted(
        {k.partition("@")[2] for k in keys if "@" in k and k.partition("@")[0] in CAUSAL_METRICS}
    )
    sited = [f"{m}@{site}" for site in sites for m in CAUSAL_METRICS if f"{m}@{site}" in keys]
    cut = MEAN_METRICS.index(CAUSAL_METRICS[-1]) + 1
    return (*MEAN_METRICS[:cut], *sited, *MEAN_METRICS[cut:])


@dataclass(frozen=True, kw_only=True)
class MethodSummary:
    """One method's line: instance/target counts, metric intervals and seconds per target.

    ``diagnostics``: mean over the method's targets of each numeric entry of the rows'
    ``"diagnostics"`` (e.g. ReAGent's ``steps``, ``probes_stopped``); empty when none stored.
    ``unconverged``: ``"unconverged at N steps, k/n targets"`` when some of its rows stopped at
    their step limit (:mod:`heta_lens.evals.convergence`), else ``""``.
    """

    method: str
    n_instances: int
    n_targets: int
    values: dict[str, Interval]
    raw_soft: dict[str, float]
    seconds: float
    seconds_shared: bool
    diagnostics: dict[str, float] = field(default_factory=dict)
    unconverged: str = ""

    @property
    def label(self) -> str:
        """The method's name as tables show it (with its ``unconverged`` note)."""
        return f"{self.method} ({self.unconverged})" if self.unconverged else self.method


def per_instance_means(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """method → uid → metric → mean over that instance's targets."""
    sums: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for row in rows:
        for metric, value in row["metrics"].items():
            if value is not None and not math.isnan(value):
                sums[(row["method"], row["uid"], metric)].append(value)
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for (method, uid, metric), values in sums.items():
        out[method][uid][metric] = sum(values) / len(values)
    return out


def summarize(
    rows: Sequence[dict[str, Any]], *, n_resamples: int = 2000, seed: int = 0
) -> list[MethodSummary]:
    """One :class:`MethodSummary` per method found in ``rows`` (random baseline last)."""
    table = per_instance_means(rows)
    random = table.get(RANDOM, {})
    methods = [m for m in dict.fromkeys(r["method"] for r in rows) if m != RANDOM]
    keys = {k for r in rows for k in r["metrics"]}
    ratios = log_ratio_metrics(keys)
    stalled = unconverged(rows)
    out = []
    for method in [*methods, RANDOM] if random else methods:
        per_uid = table.get(method, {})
        mine = [r for r in rows if r["method"] == method]
        values: dict[str, Interval] = {}
        raw: dict[str, float] = {}
        for metric in ratios:
            uids = [u for u in per_uid if metric in per_uid[u] and metric in random.get(u, {})]
            if uids:
                a = [per_uid[u][metric] for u in uids]
                b = [random[u][metric] for u in uids]
                values[metric] = bootstrap_log_ratio(a, b, n_resamples=n_resamples, seed=seed)
                raw[metric] = sum(a) / len(a)
        for metric in mean_metrics(keys):
            column = [per_uid[u][metric] for u in per_uid if metric in per_uid[u]]
            if column:
                values[metric] = bootstrap_ci(column, n_resamples=n_resamples, seed=seed)
        out.append(
            MethodSummary(
                method=method,
                n_instances=len(per_uid),
                n_targets=len(mine),
                values=values,
                raw_soft=raw,
                seconds=sum(r["seconds"] for r in mine) / max(1, len(mine)),
                seconds_shared=any(r.get("seconds_shared") for r in mine),
                diagnostics=_mean_diagnostics(mine),
                unconverged=stalled[method].label if method in stalled else "",
            )
        )
    return out


def _mean_diagnostics(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Mean of each numeric diagnostic over the rows that store it (booleans count as 0/1)."""
    values: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        for key, value in row.get("diagnostics", {}).items():
            if isinstance(value, int | float):
                values[key].append(float(value))
    return {key: sum(v) / len(v) for key, v in values.items()}


def _cell(interval: Interval | None) -> str:
    if interval is None:
        return ""
    return f"{interval.mean:.3f} [{interval.low:.3f}, {interval.high:.3f}]"


def markdown_table(summaries: Sequence[MethodSummary]) -> str:
    """A markdown table: one line per method, ``mean [low, high]`` per metric."""
    keys = {m for s in summaries for m in s.values}
    metrics = [m for m in (*log_ratio_metrics(keys), *mean_metrics(keys)) if m in keys]
    titles = ["method", "targets", *(header(m) for m in metrics), "s/target"]
    lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    for s in summaries:
        seconds = f"{s.seconds:.2f}{'†' if s.seconds_shared else ''}"
        cells = [s.label, str(s.n_targets), *(_cell(s.values.get(m)) for m in metrics), seconds]
        lines.append("| " + " | ".join(cells) + " |")
    if any(s.seconds_shared for s in summaries):
        lines.append("")
        lines.append(
            "† one shared run computes every HETA-family method of a target "
            "(components reused; KL-occlusion and occlusion are read off the masked reruns "
            "behind its information term when they use the same mask); the time is that run's."
        )
    for s in summaries:
        if s.diagnostics:
            means = ", ".join(f"{k} {v:.3g}" for k, v in s.diagnostics.items())
            lines.append("")
            lines.append(f"{s.method} diagnostics (mean per target): {means}")
    stalled = [s.method for s in summaries if s.unconverged]
    if stalled:
        lines.append("")
        lines.append(
            f"{', '.join(stalled)}: on the targets counted, the step limit came before the "
            "method's own convergence rule held (not the method as published); left out of the "
            "paired comparisons."
        )
    return "\n".join(lines) + "\n"


def csv_table(summaries: Sequence[MethodSummary]) -> str:
    """Long-format CSV: method, metric, mean, low, high, n (plus raw Soft means)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["method", "metric", "mean", "low", "high", "n"])
    for s in summaries:
        for metric, interval in s.values.items():
            name = f"{metric}_log_ratio" if is_log_ratio(metric) else metric
            writer.writerow(
                [s.method, name, interval.mean, interval.low, interval.high, interval.n]
            )
        for metric, value in s.raw_soft.items():
            writer.writerow([s.method, f"{metric}_mean", value, "", "", s.n_instances])
        writer.writerow([s.method, "seconds_per_target", s.seconds, "", "", s.n_targets])
        for key, value in s.diagnostics.items():
            writer.writerow([s.method, f"diagnostics_{key}", value, "", "", s.n_targets])
        if s.unconverged:
            writer.writerow([s.method, "unconverged", s.unconverged, "", "", s.n_targets])
    return buffer.getvalue()
