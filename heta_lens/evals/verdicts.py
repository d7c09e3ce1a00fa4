"""Win / tie / loss of one method against the others, read off paired intervals.

The headline of ``evals/RESULTS.md`` claims a win only where a paired 95 % interval excludes 0
(:mod:`heta_lens.evals.compare`): the reference is better than another method on a metric
when the whole interval of (reference − other), or of ln(mean reference / mean other), lies
above 0, worse when it lies below, and tied otherwise (also when the interval is undefined,
e.g. a ln-ratio of two zero means). For the metrics of :data:`LOWER_IS_BETTER` (sensitivity,
misattribution) the signs swap.
"""

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from heta_lens.evals.compare import Comparison, compare_methods
from heta_lens.evals.summary import header as title

Verdict = Literal["win", "tie", "loss"]

LOWER_IS_BETTER: frozenset[str] = frozenset({"sensitivity", "misattribution"})
"""Metrics (before any ``@control``) where the smaller value is the better one."""

SYMBOL: dict[Verdict, str] = {"win": "W", "tie": "·", "loss": "L"}
"""How :func:`verdict_table` writes a verdict."""

HEADLINE_METRICS: tuple[str, ...] = (
    "soft_nc@rank",
    "soft_ns@rank",
    "soft_nc_logp@rank",
    "hard_nc",
    "hard_ns",
    "hard_nc_logp",
    "hard_ns_logp",
)
"""The concentration-invariant metrics the ``evals/RESULTS.md`` headline counts: Soft-NC/NS
under the ``rank`` control (on the distribution, Soft-NC also on log p(target)) and hard-top-k
NC/NS on the distribution and on log p(target)."""

RECIPE_METRICS: tuple[str, ...] = ("soft_nc", "soft_ns")
"""ReAGent's Soft-NC/NS on the raw scores: shown beside the headline, never counted (they
reward concentration)."""


def verdict(comparison: Comparison) -> Verdict:
    """``win`` if the paired interval lies above 0, ``loss`` if below, else ``tie`` (the
    other way round for :data:`LOWER_IS_BETTER`).

    Examples:
        >>> from heta_lens.evals.metrics import Interval
        >>> iv = Interval(mean=0.3, low=0.1, high=0.5, n=20, n_dropped=0,
        ...               confidence=0.95, n_resamples=2000)
        >>> verdict(Comparison(reference="a", other="b", metric="hard_nc",
        ...                    statistic="difference", interval=iv, n_higher=15))
        'win'
    """
    low, high = comparison.interval.low, comparison.interval.high
    if math.isnan(low) or math.isnan(high):
        return "tie"
    flipped = comparison.metric.split("@", 1)[0] in LOWER_IS_BETTER
    if low > 0:
        return "loss" if flipped else "win"
    if high < 0:
        return "win" if flipped else "loss"
    return "tie"


def verdict_table(
    rows: Sequence[dict[str, Any]],
    *,
    reference: str,
    metrics: Sequence[str],
    others: Sequence[str] | None = None,
    seed: int = 0,
    counted: Sequence[str] | None = None,
    bold: bool = False,
    labels: Mapping[str, str] | None = None,
) -> str:
    """A markdown table, one line per other method, one column per metric: the verdict
    symbol (``W`` / ``·`` / ``L``, :data:`SYMBOL`) and the paired statistic, then the counts
    of wins, ties and losses over the line's ``counted`` metrics.

    Args:
        rows: Rows of an eval run.
        reference: The method judged.
        metrics: Metric names (:func:`~heta_lens.evals.compare.compare_methods`).
        others: Methods compared (default as ``compare_methods``).
        seed: Bootstrap seed.
        counted: The metrics the W / · / L counts cover (default: all of ``metrics``; the
            others are shown, not counted).
        bold: Write wins and losses as ``**W**`` / ``**L**``.
        labels: Display names of the methods (default: the method names).

    Raises:
        ValueError: As :func:`~heta_lens.evals.compare.compare_methods`.
    """
    found = compare_methods(rows, reference=reference, others=others, metrics=metrics, seed=seed)
    by_pair = {(c.other, c.metric): c for c in found}
    names = list(dict.fromkeys(c.other for c in found))
    counting = set(metrics if counted is None else counted)
    if unknown := counting - set(metrics):
        raise ValueError(f"counted metrics {sorted(unknown)} are not among the table's metrics")
    names_of = dict(labels or {})
    head = [f"{names_of.get(reference, reference)} vs", *(title(m) for m in metrics), "W / · / L"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for other in names:
        cells = [names_of.get(other, other)]
        counts = {"win": 0, "tie": 0, "loss": 0}
        for metric in metrics:
            c = by_pair.get((other, metric))
            if c is None:
                cells.append("")
                continue
            v = verdict(c)
            if metric in counting:
                counts[v] += 1
            mark = f"**{SYMBOL[v]}**" if bold and v != "tie" else SYMBOL[v]
            cells.append(f"{mark} {c.interval.mean:+.3f}")
        cells.append(f"{counts['win']} / {counts['tie']} / {counts['loss']}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


__all__ = [
    "HEADLINE_METRICS",
    "LOWER_IS_BETTER",
    "RECIPE_METRICS",
    "SYMBOL",
    "Verdict",
    "verdict",
    "verdict_table",
]
