"""Paired comparisons of one method against others on the same instances of an eval run.

The summary table (:mod:`heta_lens.evals.summary`) gives each method its own interval; two
methods scored on the same instances can overlap there and still differ on every instance.
A paired comparison resamples the instances once for both methods:

- Soft-NS / Soft-NC and their target-side versions ``soft_ns_logp`` / ``soft_nc_logp``
  (:data:`~heta_lens.evals.summary.LOG_RATIO_METRICS`):
  ``ln(mean_ref / mean_other)`` of the raw per-instance metric — the difference of the two
  methods' ReAGent ln-ratios, since the random baseline's mean cancels — with the paired
  percentile bootstrap of :func:`~heta_lens.evals.metrics.bootstrap_log_ratio`.
- Every other metric (:data:`~heta_lens.evals.summary.MEAN_METRICS`): the mean over instances
  of ``ref − other``, with :func:`~heta_lens.evals.metrics.bootstrap_ci` of those differences.

As in the summary, an instance's value is the mean over its targets (a sequence-level prompt
contributes several targets that are not independent), and only instances where both methods
have the metric enter. ``n_higher`` counts the instances where the reference's value is
strictly higher. A method that stopped at its step limit before converging (ReAGent,
:mod:`heta_lens.evals.convergence`) is not compared unless asked for by name, and is labelled
in the table when it is.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from heta_lens.evals.convergence import labelled, unconverged
from heta_lens.evals.evaluate import RANDOM
from heta_lens.evals.metrics import Interval, bootstrap_ci, bootstrap_log_ratio
from heta_lens.evals.summary import (
    HEADERS,
    LOG_RATIO_METRICS,
    is_log_ratio,
    log_ratio_metrics,
    per_instance_means,
)
from heta_lens.evals.summary import header as title


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """The reference against one other method on one metric.

    Attributes:
        reference: The reference method.
        other: The method compared with it.
        metric: A metric name (a key of :data:`~heta_lens.evals.summary.HEADERS`).
        statistic: ``"log_ratio"`` (ln(mean_ref / mean_other)) or ``"difference"``
            (mean of ref − other).
        interval: The statistic with its paired bootstrap interval (``n``: common instances).
        n_higher: Common instances where the reference's value is strictly higher.
    """

    reference: str
    other: str
    metric: str
    statistic: Literal["log_ratio", "difference"]
    interval: Interval
    n_higher: int


def compare_methods(
    rows: Sequence[dict[str, Any]],
    *,
    reference: str,
    others: Sequence[str] | None = None,
    metrics: Sequence[str] = LOG_RATIO_METRICS,
    n_resamples: int = 2000,
    seed: int = 0,
) -> list[Comparison]:
    """Paired comparisons of ``reference`` with each of ``others`` (module docstring).

    Args:
        rows: Rows of an eval run (:func:`heta_lens.evals.store.read_rows`).
        reference: The method every other is compared with.
        others: Methods to compare (default: every other method in ``rows`` but the random
            baseline and the unconverged ones, :mod:`heta_lens.evals.convergence`, in order of
            first appearance).
        metrics: Metric names; Soft-NS/NC get the log ratio, the rest the difference.
        n_resamples: Bootstrap resamples.
        seed: Seed of the resampling generator (the same for every pair).

    Returns:
        One :class:`Comparison` per (other, metric) with at least one common instance, in
        the order of ``others`` then ``metrics``.

    Raises:
        ValueError: ``reference`` or a name in ``others`` has no rows, a metric is unknown,
            or a Soft value is negative (from the log ratio).
    """
    methods = list(dict.fromkeys(r["method"] for r in rows))
    stalled = unconverged(rows)
    chosen = (
        [m for m in methods if m not in (reference, RANDOM) and m not in stalled]
        if others is None
        else others
    )
    for name in (reference, *chosen):
        if name not in methods:
            raise ValueError(f"no rows for method {name!r}; methods in the rows: {methods}")
    for metric in metrics:
        if metric.split("@", 1)[0] not in HEADERS:
            raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(HEADERS)}")
    table = per_instance_means(rows)
    ref = table[reference]
    out: list[Comparison] = []
    for other in chosen:
        for metric in metrics:
            uids = [u for u in ref if metric in ref[u] and metric in table[other].get(u, {})]
            if not uids:
                continue
            a = [ref[u][metric] for u in uids]
            b = [table[other][u][metric] for u in uids]
            log_ratio = is_log_ratio(metric)
            interval = (
                bootstrap_log_ratio(a, b, n_resamples=n_resamples, seed=seed)
                if log_ratio
                else bootstrap_ci(
                    [x - y for x, y in zip(a, b, strict=True)], n_resamples=n_resamples, seed=seed
                )
            )
            out.append(
                Comparison(
                    reference=reference,
                    other=other,
                    metric=metric,
                    statistic="log_ratio" if log_ratio else "difference",
                    interval=interval,
                    n_higher=sum(x > y for x, y in zip(a, b, strict=True)),
                )
            )
    return out


def comparison_table(comparisons: Sequence[Comparison], rows: Sequence[dict[str, Any]] = ()) -> str:
    """A markdown table: one line per other method, ``stat [low, high]`` and ``higher / n``
    per metric (empty cells where a pair had no common instance). With the run's ``rows``,
    an unconverged method is labelled (:func:`~heta_lens.evals.convergence.labelled`)."""
    if not comparisons:
        return ""
    stalled = unconverged(rows)
    reference = comparisons[0].reference
    metrics = list(dict.fromkeys(c.metric for c in comparisons))
    others = list(dict.fromkeys(c.other for c in comparisons))
    found = {(c.other, c.metric): c for c in comparisons}
    header = [f"{labelled(reference, stalled)} vs"]
    for metric in metrics:
        kind = "ln-ratio" if is_log_ratio(metric) else "difference"
        header += [f"{title(metric).replace(' ln-ratio', '')} ({kind})", "higher"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for other in others:
        cells = [labelled(other, stalled)]
        for metric in metrics:
            c = found.get((other, metric))
            if c is None:
                cells += ["", ""]
                continue
            i = c.interval
            cells += [f"{i.mean:.3f} [{i.low:.3f}, {i.high:.3f}]", f"{c.n_higher} / {i.n}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def paired_section(
    rows: Sequence[dict[str, Any]], *, reference: str = "heta", seed: int = 0
) -> str:
    """What ``heta-lens eval`` prints under its summary: the Soft-NS/NC comparisons of
    ``reference`` with every other converged method, or ``""`` when ``reference`` did not
    run, ran alone, or no Soft metric was computed. Unconverged methods are named as left out.
    """
    stalled = unconverged(rows)
    methods = {r["method"] for r in rows} - {RANDOM} - (stalled.keys() - {reference})
    keys = {k for r in rows for k in r["metrics"]}
    metrics = [m for m in log_ratio_metrics(keys) if m in keys]
    if reference not in methods or len(methods) < 2 or not metrics:
        return ""
    comparisons = compare_methods(rows, reference=reference, metrics=metrics, seed=seed)
    left_out = [labelled(m, stalled) for m in stalled if m != reference]
    note = f"\nNot compared: {'; '.join(left_out)}.\n" if left_out else ""
    return (
        f"\nPaired with {reference}: ln(mean {reference} / mean other) of the raw metric, "
        "95% bootstrap over instances, and on how many instances it is higher\n\n"
        + comparison_table(comparisons, rows)
        + note
    )
