"""Percentile-bootstrap intervals: a mean, a paired log ratio, a mean over clusters.

Built on ``scipy.stats.bootstrap(method="percentile")`` with ``rng =
numpy.random.default_rng(seed)``: resamples are ``rng.integers(0, n, size=(n_resamples, n))``
(paired samples share the indices, ``paired=True``) and the bounds are the ``(1 − c)/2`` and
``(1 + c)/2`` quantiles of the resampled statistic (linear interpolation). Two rules of ours on
top: NaN instances are dropped and counted first, and when a resampled statistic is not finite
(a log ratio whose resampled mean is 0) the bounds are read without interpolation
(``numpy.quantile(method="inverted_cdf")``: ±inf bounds, NaN bounds when a resample is
NaN), where scipy would give NaN.
"""

import math
import warnings
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from scipy import stats

from heta_lens._typing import typechecked
from heta_lens.evals.metrics.ratio import Values, as_array, log_ratio


@dataclass(frozen=True, kw_only=True)
class Interval:
    """A point estimate with its bootstrap interval.

    Attributes:
        mean: The statistic on the kept instances (the mean, or the log ratio of means).
        low: Lower bound of the interval.
        high: Upper bound of the interval.
        n: Instances kept (NaNs dropped).
        n_dropped: Instances dropped because a value was NaN.
        confidence: Two-sided confidence level.
        n_resamples: Bootstrap resamples.
    """

    mean: float
    low: float
    high: float
    n: int
    n_dropped: int = 0
    confidence: float = 0.95
    n_resamples: int = 2000

    def __post_init__(self) -> None:
        if self.n < 0 or self.n_dropped < 0:
            raise ValueError("n and n_dropped must be non-negative")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must lie in (0, 1); got {self.confidence}")
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) exceeds high ({self.high})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_options(n_resamples: int, confidence: float) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1; got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1); got {confidence}")


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return x.mean(axis=axis)


def _log_ratio(m: np.ndarray, r: np.ndarray, axis: int = -1) -> np.ndarray:
    """ln(mean m) − ln(mean r): ±inf when one mean is 0, NaN when both are."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(m.mean(axis=axis)) - np.log(r.mean(axis=axis))


def _percentile_interval(
    samples: tuple[np.ndarray, ...],
    statistic: Callable[..., np.ndarray],
    *,
    n_resamples: int,
    confidence: float,
    seed: int,
) -> tuple[float, float]:
    """The percentile interval of ``scipy.stats.bootstrap`` over paired ``samples`` (n ≥ 2).

    A non-finite resampled statistic gets the ``inverted_cdf`` bounds of the module docstring.
    """
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        # scipy warns (DegenerateDataWarning) and returns NaN bounds for a non-finite
        # distribution, replaced below; its standard error (unused) warns for one resample.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.bootstrap(
            samples,
            statistic,
            n_resamples=n_resamples,
            confidence_level=confidence,
            method="percentile",
            paired=True,
            vectorized=True,
            rng=np.random.default_rng(seed),
        )
    resampled = np.asarray(result.bootstrap_distribution)
    if np.isfinite(resampled).all():
        interval = result.confidence_interval
        return float(interval.low), float(interval.high)
    probs = [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0]
    low, high = np.quantile(resampled, probs, method="inverted_cdf")
    return float(low), float(high)


@typechecked
def bootstrap_ci(
    values: Values, *, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """Mean of ``values`` with its percentile-bootstrap interval.

    The interval is that of ``scipy.stats.bootstrap((values,), numpy.mean,
    method="percentile", rng=numpy.random.default_rng(seed))`` on the kept values.
    NaN values (degenerate instances, e.g. Soft-NS with 1 − S0 = 0) are dropped before
    resampling and counted in ``Interval.n_dropped``. With no value left the mean and bounds
    are NaN; with one value the interval is that value.

    Args:
        values: Per-instance values, 1-D.
        n_resamples: Bootstrap resamples.
        confidence: Two-sided level of the interval, in (0, 1).
        seed: Seed of the resampling generator (same seed, same interval).

    Raises:
        ValueError: Infinite values, input that is not 1-D, or bad options.

    Examples:
        >>> bootstrap_ci([1.0, 2.0, 3.0, 4.0])
        Interval(mean=2.5, low=1.5, high=3.5, n=4, n_dropped=0, confidence=0.95, n_resamples=2000)
    """
    _check_options(n_resamples, confidence)
    arr = as_array(values)
    kept = arr[~np.isnan(arr)]
    if np.isinf(kept).any():
        raise ValueError("values contain infinite entries")
    dropped = int(arr.size - kept.size)
    common = {"n_dropped": dropped, "confidence": confidence, "n_resamples": n_resamples}
    n = int(kept.size)
    if n == 0:
        return Interval(mean=math.nan, low=math.nan, high=math.nan, n=0, **common)
    mean = float(kept.mean())
    if n == 1:  # scipy needs two observations; every resample is the one value
        return Interval(mean=mean, low=mean, high=mean, n=1, **common)
    low, high = _percentile_interval(
        (kept,), _mean, n_resamples=n_resamples, confidence=confidence, seed=seed
    )
    return Interval(mean=mean, low=low, high=high, n=n, **common)


@typechecked
def bootstrap_log_ratio(
    method_values: Values,
    random_values: Values,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """ln(mean(method) / mean(random)) with a paired percentile-bootstrap interval.

    Instance i contributes the pair (method_values[i], random_values[i]) — the method and the
    random baseline scored on the same target — and pairs are resampled together. A pair with a
    NaN on either side is dropped (counted in ``n_dropped``). Each resample's statistic follows
    :func:`heta_lens.evals.metrics.ratio.log_ratio` (±inf when one resampled mean is 0, NaN
    when both are); when any resample is non-finite the bounds are read without interpolation
    (``numpy.quantile(method="inverted_cdf")``), so they can be infinite (NaN when a resample
    is NaN: numpy propagates it).

    Raises:
        ValueError: Arrays of different lengths, infinite or negative values, or bad options.
    """
    _check_options(n_resamples, confidence)
    m, r = as_array(method_values), as_array(random_values)
    if m.shape != r.shape:
        raise ValueError(f"paired values need equal lengths; got {m.size} and {r.size}")
    keep = ~(np.isnan(m) | np.isnan(r))
    m, r = m[keep], r[keep]
    point = log_ratio(m, r)  # also validates: no inf, no negatives
    common = {
        "n_dropped": int(keep.size - m.size),
        "confidence": confidence,
        "n_resamples": n_resamples,
    }
    n = int(m.size)
    if n == 0:
        return Interval(mean=math.nan, low=math.nan, high=math.nan, n=0, **common)
    if n == 1:  # scipy needs two observations; every resample is the one pair
        one = float(_log_ratio(m, r))
        return Interval(mean=point, low=one, high=one, n=1, **common)
    low, high = _percentile_interval(
        (m, r), _log_ratio, n_resamples=n_resamples, confidence=confidence, seed=seed
    )
    return Interval(mean=point, low=low, high=high, n=n, **common)


@typechecked
def bootstrap_cluster_ci(
    values: Values,
    clusters: Sequence[Hashable],
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Mean over clusters of each cluster's mean, with a cluster-bootstrap interval.

    Observations of one cluster (the targets of one sequence-level instance) are not
    independent, so whole clusters are resampled with replacement and the statistic is the
    mean of the resampled clusters' means: every cluster weighs the same, as in
    :func:`heta_lens.evals.summary.per_instance_means`. Resampling clusters and averaging
    their means is resampling the cluster means, so this is :func:`bootstrap_ci` of the
    per-cluster means (clusters in order of first appearance; same seed, same interval).

    NaN values are dropped before the cluster means are taken; ``n`` counts the clusters
    with a value left, ``n_dropped`` the clusters left with none.

    Args:
        values: Per-observation values, 1-D.
        clusters: The cluster label of each value (e.g. the instance uid).
        n_resamples: Bootstrap resamples.
        confidence: Two-sided level of the interval, in (0, 1).
        seed: Seed of the resampling generator.

    Raises:
        ValueError: ``values`` and ``clusters`` of different lengths, or as
            :func:`bootstrap_ci`.

    Examples:
        >>> bootstrap_cluster_ci([1.0, 3.0, 2.0, 4.0], ["a", "a", "b", "c"], n_resamples=500)
        Interval(mean=2.6666666666666665, low=2.0, high=4.0, n=3, n_dropped=0,
                 confidence=0.95, n_resamples=500)
    """
    arr = as_array(values)
    if arr.size != len(clusters):
        raise ValueError(f"one cluster per value needed; got {arr.size} values, {len(clusters)}")
    members: dict[Hashable, list[float]] = {label: [] for label in clusters}
    for label, value in zip(clusters, arr.tolist(), strict=True):
        if not math.isnan(value):
            members[label].append(value)
    means = [sum(kept) / len(kept) for kept in members.values() if kept]
    inner = bootstrap_ci(means, n_resamples=n_resamples, confidence=confidence, seed=seed)
    return replace(inner, n_dropped=len(members) - len(means))
