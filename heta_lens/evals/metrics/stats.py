"""Percentile-bootstrap intervals for per-instance metrics and for ReAGent's log ratio.

Both functions resample instances with replacement (``numpy.random.default_rng(seed)``,
``rng.integers(0, n, size=(n_resamples, n))``) and take the ``(1 − c)/2`` and ``(1 + c)/2``
quantiles of the resampled statistic with ``numpy.quantile``'s default linear interpolation —
the percentile interval ``scipy.stats.bootstrap(method="percentile")`` computes.
"""

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from heta_lens._typing import typechecked
from heta_lens.evals.metrics.soft import Values, as_array, log_ratio


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


def _bounds(stats: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile bounds; without interpolation when a resample is non-finite (±inf/NaN)."""
    probs = [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0]
    method = "linear" if np.isfinite(stats).all() else "inverted_cdf"
    low, high = np.quantile(stats, probs, method=method)
    return float(low), float(high)


@typechecked
def bootstrap_ci(
    values: Values, *, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """Mean of ``values`` with its percentile-bootstrap interval.

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
    rng = np.random.default_rng(seed)
    means = kept[rng.integers(0, n, size=(n_resamples, n))].mean(axis=1)
    low, high = _bounds(means, confidence)
    return Interval(mean=float(kept.mean()), low=low, high=high, n=n, **common)


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
    :func:`heta_lens.evals.metrics.soft.log_ratio` (±inf when one resampled mean is 0, NaN
    when both are); when any resample is non-finite the bounds are read without interpolation
    (``numpy.quantile(method="inverted_cdf")``), so they can be infinite (NaN sorts last).

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
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_resamples, n))
    with np.errstate(divide="ignore", invalid="ignore"):
        stats = np.log(m[idx].mean(axis=1)) - np.log(r[idx].mean(axis=1))
    low, high = _bounds(stats, confidence)
    return Interval(mean=point, low=low, high=high, n=n, **common)
