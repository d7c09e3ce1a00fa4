"""Bootstrap intervals against scipy.stats.bootstrap and basic interval properties."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from heta_lens.evals.metrics import (
    Interval,
    bootstrap_ci,
    bootstrap_cluster_ci,
    bootstrap_log_ratio,
    log_ratio,
)
from heta_lens.evals.summary import summarize


def sample(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).gamma(2.0, 0.5, size=n)  # skewed, positive


def test_interval_contains_the_mean_and_is_deterministic_under_the_seed():
    x = sample(300)
    a = bootstrap_ci(x)
    assert a.mean == pytest.approx(float(x.mean()), rel=1e-12)
    assert a.low < a.mean < a.high
    assert (a.n, a.n_dropped, a.confidence, a.n_resamples) == (300, 0, 0.95, 2000)
    assert bootstrap_ci(x) == a
    assert bootstrap_ci(x, seed=1) != a
    assert bootstrap_ci(torch.tensor(x)) == a
    assert bootstrap_ci(list(x)) == a


def test_interval_shrinks_with_n():
    small, large = bootstrap_ci(sample(50)), bootstrap_ci(sample(800))
    # width ∝ 1/√n: 16× the data → about a quarter of the width
    assert large.high - large.low < 0.5 * (small.high - small.low)


def test_higher_confidence_gives_a_wider_interval():
    x = sample(200)
    narrow, wide = bootstrap_ci(x, confidence=0.8), bootstrap_ci(x, confidence=0.99)
    assert wide.low < narrow.low < narrow.high < wide.high


@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_matches_scipy_percentile_bootstrap(confidence):
    """Tolerance: 0.3 standard errors of the mean. The Monte-Carlo sd of a 2.5% bootstrap
    quantile is ≈ sqrt(.025·.975/B)/φ(1.96) ≈ 0.06 SE at B = 2,000 (ours) and 0.02 SE at
    B = 20,000 (scipy), so 0.3 SE is about 4.7 sd of their difference."""
    x = sample(400, seed=3)
    ours = bootstrap_ci(x, confidence=confidence, seed=7)
    ref = stats.bootstrap(
        (x,),
        np.mean,
        n_resamples=20_000,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(0),
    ).confidence_interval
    se = float(x.std(ddof=1) / math.sqrt(x.size))
    assert ours.low == pytest.approx(ref.low, abs=0.3 * se)
    assert ours.high == pytest.approx(ref.high, abs=0.3 * se)


def test_nans_are_dropped_and_counted():
    x = sample(100)
    with_nans = np.concatenate([x[:40], [math.nan, math.nan], x[40:], [math.nan]])
    got = bootstrap_ci(with_nans)
    assert (got.n, got.n_dropped) == (100, 3)
    assert got.mean == pytest.approx(float(x.mean()))
    empty = bootstrap_ci([math.nan, math.nan])
    assert (empty.n, empty.n_dropped) == (0, 2) and math.isnan(empty.mean)
    one = bootstrap_ci([0.25])
    assert (one.mean, one.low, one.high) == (0.25, 0.25, 0.25)


def test_bad_input_rejected():
    with pytest.raises(ValueError, match="infinite"):
        bootstrap_ci([1.0, math.inf])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([1.0, 2.0], confidence=1.0)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci([1.0, 2.0], n_resamples=0)
    with pytest.raises(ValueError, match="1-D"):
        bootstrap_ci(np.ones((2, 2)))
    with pytest.raises(ValueError, match="exceeds"):
        Interval(mean=0.0, low=1.0, high=0.0, n=1)


# ---------------------------------------------------------------- paired log ratio
def paired(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    difficulty = rng.gamma(2.0, 0.5, size=n)  # shared per-instance factor: pairs correlate
    return difficulty * rng.uniform(1.0, 2.0, n), difficulty * rng.uniform(0.5, 1.5, n)


def test_log_ratio_interval_matches_scipy_paired_bootstrap():
    m, r = paired(300, seed=1)
    got = bootstrap_log_ratio(m, r, seed=4)
    assert got.mean == pytest.approx(log_ratio(m, r), rel=1e-12)
    assert got.low < got.mean < got.high

    def statistic(a, b, axis):
        return np.log(a.mean(axis=axis) / b.mean(axis=axis))

    ref = stats.bootstrap(
        (m, r),
        statistic,
        paired=True,
        vectorized=True,
        n_resamples=20_000,
        method="percentile",
        rng=np.random.default_rng(0),
    )
    se = float(ref.standard_error)  # same 0.3-SE Monte-Carlo tolerance as for the mean
    assert got.low == pytest.approx(ref.confidence_interval.low, abs=0.3 * se)
    assert got.high == pytest.approx(ref.confidence_interval.high, abs=0.3 * se)


def test_pairing_narrows_the_interval_for_correlated_pairs():
    m, r = paired(300, seed=2)
    together = bootstrap_log_ratio(m, r)
    rng = np.random.default_rng(5)
    # unpaired reference: resample the two arrays independently
    stats_ = [
        math.log(m[rng.integers(0, 300, 300)].mean() / r[rng.integers(0, 300, 300)].mean())
        for _ in range(2000)
    ]
    lo, hi = np.quantile(stats_, [0.025, 0.975])
    assert together.high - together.low < 0.7 * (hi - lo)


def test_log_ratio_pairs_with_nan_dropped_and_bad_input_rejected():
    m, r = paired(50)
    m_nan, r_nan = m.copy(), r.copy()
    m_nan[3], r_nan[7] = math.nan, math.nan
    got = bootstrap_log_ratio(m_nan, r_nan)
    keep = np.ones(50, dtype=bool)
    keep[[3, 7]] = False
    assert (got.n, got.n_dropped) == (48, 2)
    assert got.mean == pytest.approx(log_ratio(m[keep], r[keep]))
    assert bootstrap_log_ratio(m[keep], r[keep]) == Interval(
        mean=got.mean, low=got.low, high=got.high, n=48
    )
    with pytest.raises(ValueError, match="equal lengths"):
        bootstrap_log_ratio(m, r[:10])
    with pytest.raises(ValueError, match="non-negative"):
        bootstrap_log_ratio(-m, r)


def test_random_mean_zero_in_some_resamples_gives_infinite_bound():
    # two zero-random instances out of three: some resamples have a zero random mean
    got = bootstrap_log_ratio([1.0, 1.0, 1.0], [0.0, 0.0, 1.0], n_resamples=500)
    assert got.mean == pytest.approx(math.log(3.0))
    assert got.high == math.inf and math.isfinite(got.low)


# ---------------------------------------------------------------- same draws as scipy
def _scipy_interval(samples, statistic, *, n_resamples, confidence, seed):
    return stats.bootstrap(
        samples,
        statistic,
        paired=True,
        vectorized=True,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    ).confidence_interval


@pytest.mark.parametrize(
    ("n", "n_resamples", "confidence", "seed"),
    [(2, 7, 0.8, 0), (37, 500, 0.9, 3), (300, 2000, 0.95, 11)],
)
def test_same_seed_gives_exactly_the_scipy_interval(n, n_resamples, confidence, seed):
    x = sample(n, seed=seed)
    got = bootstrap_ci(x, n_resamples=n_resamples, confidence=confidence, seed=seed)
    ref = _scipy_interval((x,), np.mean, n_resamples=n_resamples, confidence=confidence, seed=seed)
    assert (got.low, got.high) == (ref.low, ref.high)

    m, r = paired(n, seed=seed)

    def statistic(a, b, axis):
        return np.log(a.mean(axis=axis)) - np.log(b.mean(axis=axis))

    got = bootstrap_log_ratio(m, r, n_resamples=n_resamples, confidence=confidence, seed=seed)
    ref = _scipy_interval(
        (m, r), statistic, n_resamples=n_resamples, confidence=confidence, seed=seed
    )
    assert (got.low, got.high) == (ref.low, ref.high)


def test_non_finite_resamples_read_without_interpolation_from_scipys_draws():
    """Oracle: the draws scipy makes (rng.integers(0, n, (B, n))), the statistic by hand,
    ``numpy.quantile(method="inverted_cdf")``."""
    m = np.array([1.0, 2.0, 0.5, 3.0, 1.0])
    r = np.array([0.0, 0.0, 1.0, 0.0, 3.0])  # resamples of instances 0, 1, 3 only: +inf
    idx = np.random.default_rng(5).integers(0, 5, size=(300, 5))
    with np.errstate(divide="ignore", invalid="ignore"):
        resampled = np.log(m[idx].mean(axis=1)) - np.log(r[idx].mean(axis=1))
    assert np.isposinf(resampled).any() and not np.isnan(resampled).any()
    low, high = np.quantile(resampled, [0.05, 0.95], method="inverted_cdf")
    got = bootstrap_log_ratio(m, r, n_resamples=300, confidence=0.9, seed=5)
    assert (got.low, got.high) == (low, high) and got.high == math.inf
    both_zero = bootstrap_log_ratio([0.0, 1.0, 1.0], [0.0, 1.0, 1.0], n_resamples=200)
    assert math.isnan(both_zero.low) and math.isnan(both_zero.high)  # NaN propagates


# ---------------------------------------------------------------- clustered
def clustered(n_clusters: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 6, n_clusters)  # unequal clusters: pooled mean ≠ mean of means
    centres = rng.normal(0.0, 1.0, n_clusters)
    values = np.concatenate(
        [c + 0.3 * rng.normal(size=k) for c, k in zip(centres, sizes, strict=True)]
    )
    labels = [f"u{i}" for i, k in enumerate(sizes) for _ in range(k)]
    order = rng.permutation(len(labels))  # clusters interleaved, as rows of a run are
    return values[order], [labels[i] for i in order]


def test_cluster_bootstrap_matches_explicit_resampling_of_clusters():
    """Oracle: draw clusters with scipy's draws, gather every observation of each drawn
    cluster, average within then across the drawn clusters, linear quantiles."""
    values, labels = clustered(25, seed=1)
    got = bootstrap_cluster_ci(values, labels, n_resamples=400, confidence=0.9, seed=2)
    names = list(dict.fromkeys(labels))
    members = {u: [v for v, lab in zip(values, labels, strict=True) if lab == u] for u in names}
    draws = np.random.default_rng(2).integers(0, len(names), size=(400, len(names)))
    resampled = [np.mean([np.mean(members[names[i]]) for i in row]) for row in draws]
    low, high = np.quantile(resampled, [0.05, 0.95])
    assert got.n == 25 and got.n_dropped == 0
    assert got.mean == pytest.approx(np.mean([np.mean(v) for v in members.values()]), rel=1e-12)
    assert got.low == pytest.approx(low, rel=1e-12, abs=1e-12)
    assert got.high == pytest.approx(high, rel=1e-12, abs=1e-12)
    assert got.mean != pytest.approx(float(values.mean()), rel=1e-6)  # not the pooled mean


def test_cluster_bootstrap_is_the_summary_tables_instance_bootstrap():
    values, labels = clustered(30, seed=4)
    rows = [
        {"method": "m", "uid": u, "metrics": {"dsa": float(v)}, "seconds": 0.0}
        for v, u in zip(values, labels, strict=True)
    ]
    (summary,) = summarize(rows, n_resamples=300, seed=6)
    assert bootstrap_cluster_ci(values, labels, n_resamples=300, seed=6) == summary.values["dsa"]


def test_cluster_bootstrap_drops_nans_and_empty_clusters_and_checks_lengths():
    got = bootstrap_cluster_ci([1.0, math.nan, 3.0, math.nan], ["a", "a", "b", "c"])
    assert (got.mean, got.n, got.n_dropped) == (2.0, 2, 1)
    with pytest.raises(ValueError, match="one cluster per value"):
        bootstrap_cluster_ci([1.0, 2.0], ["a"])


@pytest.mark.bridge
@pytest.mark.parametrize("name", ["soft", "hard", "curves", "alignment", "stats"])
def test_docstring_examples_run(name):
    import doctest
    import importlib

    module = importlib.import_module(f"heta_lens.evals.metrics.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
