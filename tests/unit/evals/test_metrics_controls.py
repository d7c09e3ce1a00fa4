"""Concentration controls against hand values, brute force and known answers.

Known answers: the one-position oracle (all mass on the position the prediction reads) stays
rank 1 under ``rank`` and ``matched``; a permuted copy of a method's scores whose order is
the random baseline's scores exactly like it under ``rank``; two methods with the same
ranking in one power family (b ∝ a^γ) score identically under ``matched``.
"""

import math

import numpy as np
import pytest
import torch

from heta_lens.evals.metrics import random_attribution, soft_scores
from heta_lens.evals.metrics.controls import (
    apply_control,
    check_controls,
    concentration,
    controlled_soft_scores,
    matched_concentration,
    permuted_profile,
    rank_normalize,
    temper,
)
from heta_lens.evals.metrics.soft import normalize_free
from heta_lens.testing import tiny_bridge

pytestmark = pytest.mark.bridge

TOKENS = torch.tensor([1, 5, 7, 3, 9, 11, 4, 8])
SCORES = torch.tensor([4.0, 0.2, -1.0, 3.0, 0.2, 1.5, 0.7], dtype=torch.float64)
ROUNDOFF = 1e-15  # float64 sums of ≤ 8 terms in [0, 1]


def test_rank_normalize_by_hand_with_ties_and_protection():
    a = rank_normalize(SCORES, protected=1)
    # positions 1..6: [0.2, -1, 3, 0.2, 1.5, 0.7] -> ranks [2.5, 1, 6, 2.5, 5, 4], sum 21
    expected = torch.tensor([0, 2.5, 1, 6, 2.5, 5, 4], dtype=torch.float64) / 21
    torch.testing.assert_close(a, expected, rtol=0, atol=ROUNDOFF)
    flat = rank_normalize(torch.full((5,), 3.0))
    torch.testing.assert_close(flat, torch.full((5,), 0.2, dtype=torch.float64))
    # a strictly increasing transform changes nothing; a permutation only moves the masses
    torch.testing.assert_close(rank_normalize(SCORES.exp()), rank_normalize(SCORES))
    perm = torch.tensor([3, 0, 6, 1, 5, 2, 4])
    torch.testing.assert_close(rank_normalize(SCORES[perm]), rank_normalize(SCORES)[perm])


def test_temper_reaches_the_target_and_is_monotone_by_brute_force():
    a = torch.rand(40, generator=torch.Generator().manual_seed(2), dtype=torch.float64) ** 3
    a = a / a.sum()
    for target in (1.2 / 40, 0.05, 0.2):
        b, beta = temper(a, target=target)
        assert 0 < beta < math.inf
        # brentq's xtol 1e-12 on β: the reached Σa² is off by ≤ 4e-15 relative (measured)
        assert concentration(b) == pytest.approx(target, rel=2e-14)
        # the explicit power a^β / Σ a^β, without log-sum-exp
        power = a**beta / (a**beta).sum()
        torch.testing.assert_close(b, power, rtol=5e-14, atol=0)  # measured ≤ 8e-15
    betas = np.linspace(0, 8, 50)
    sums = [float(((a**x / (a**x).sum()) ** 2).sum()) for x in betas]
    assert all(np.diff(sums) > 0)


def test_temper_ends_and_zeros():
    a = torch.tensor([0.5, 0.3, 0.2, 0.0], dtype=torch.float64)
    low, beta = temper(a, target=0.1)  # below 1/|support| = 1/3: uniform on the support
    assert beta == 0.0
    torch.testing.assert_close(low, torch.tensor([1 / 3, 1 / 3, 1 / 3, 0], dtype=torch.float64))
    high, beta = temper(a, target=1.0)  # the argmax alone
    assert beta == math.inf and high.tolist() == [1.0, 0.0, 0.0, 0.0]
    mid, _ = temper(a, target=0.5)
    assert mid[3] == 0.0  # a zero stays zero under every β
    for bad, message in [(0.0, "target"), (1.5, "target")]:
        with pytest.raises(ValueError, match=message):
            temper(a, target=bad)
    with pytest.raises(ValueError, match="non-negative"):
        temper(torch.tensor([0.5, -0.1], dtype=torch.float64), target=0.6)


def test_matched_concentration_equalises_one_power_family():
    a = normalize_free(SCORES, protected=1)
    b = a**2.7 / (a**2.7).sum()  # same ranking, more concentrated
    ma = matched_concentration(SCORES, protected=1, fraction=0.5)
    mb = matched_concentration(b, protected=1, fraction=0.5)
    assert ma[0] == 0.0
    assert concentration(ma) == pytest.approx(1 / (0.5 * 6), rel=2e-14)
    torch.testing.assert_close(ma, mb, rtol=2e-14, atol=0)  # measured ≤ 3.2e-15


def test_permuted_profile_keeps_the_masses_and_moves_them_by_the_generator():
    out = permuted_profile(SCORES, generator=torch.Generator().manual_seed(5), protected=1)
    a = normalize_free(SCORES, protected=1)
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(out[1:], a[1:][perm], rtol=0, atol=0)
    assert out[0] == 0.0
    assert sorted(out.tolist()) == sorted(a.tolist())


def test_the_oracle_stays_rank_one_under_rank_and_matched():
    for j in (1, 4, 6):
        oracle = torch.zeros(7, dtype=torch.float64)
        oracle[j] = 1.0
        for name in ("rank", "matched"):
            a = apply_control(name, oracle, protected=1)
            assert int(a.argmax()) == j and float(a[j]) > float(a[1:].sum() - a[j]) / 5
    with pytest.raises(ValueError, match="unknown control"):
        apply_control("nope", SCORES)
    with pytest.raises(ValueError, match="generator"):
        apply_control("perm", SCORES)
    with pytest.raises(ValueError, match="duplicate"):
        check_controls(["rank", "rank"])


def test_controlled_soft_equals_soft_on_the_control_distribution():
    model = tiny_bridge()
    controls = ("rank", "matched", "perm")
    got = controlled_soft_scores(
        model, TOKENS, target=7, scores=SCORES, controls=controls, n_draws=2, mask_seed=9,
        generator=torch.Generator().manual_seed(3), protected=1,
    )  # fmt: skip
    perm_gen = torch.Generator().manual_seed(3)
    for name in controls:
        a = apply_control(name, SCORES, protected=1, generator=perm_gen)
        alone = soft_scores(
            model, TOKENS, target=7, scores=a, n_draws=2,
            generator=torch.Generator().manual_seed(9), protected=1,
        )  # fmt: skip
        # float64 tiny model: batch round-off measured at 0; 1e-12 for other BLAS paths
        assert got[name].soft_nc == pytest.approx(alone.soft_nc, abs=1e-12)
        assert got[name].soft_ns == pytest.approx(alone.soft_ns, abs=1e-12)
        # the target-side versions come from the same copies (same round-off floor); this
        # random model's target gains log-probability on the empty input (ℓ_0 > ℓ), so both
        # ratios are NaN here and the log-probabilities carry the comparison
        mine, theirs = got[name].logp, alone.logp
        assert mine is not None and theirs is not None
        assert mine.log_p_zero > mine.log_p
        assert mine.soft_nc == pytest.approx(theirs.soft_nc, abs=1e-12, nan_ok=True)
        assert mine.soft_ns == pytest.approx(theirs.soft_ns, abs=1e-12, nan_ok=True)
        assert mine.log_p == pytest.approx(theirs.log_p, abs=1e-12)
        assert mine.log_p_zero == pytest.approx(theirs.log_p_zero, abs=1e-12)
        assert mine.log_p_s_draws == pytest.approx(theirs.log_p_s_draws, abs=1e-12)
        assert mine.log_p_c_draws == pytest.approx(theirs.log_p_c_draws, abs=1e-12)


def test_a_permuted_copy_scores_like_random_under_rank():
    """Scores permuted into the random draw's order: identical rank distributions, so the
    same Soft numbers under the same masks (and different ones without the control)."""
    model = tiny_bridge()
    random = random_attribution(7, generator=torch.Generator().manual_seed(1))
    method = torch.tensor([3.0, -1.0, 0.7, 8.0, 0.2, 1.5, 4.0], dtype=torch.float64)
    copy = torch.empty_like(method)
    copy[random.argsort()] = method.sort().values  # the method's scores in random's order
    torch.testing.assert_close(rank_normalize(copy), rank_normalize(random), rtol=0, atol=0)

    def soft(scores, controls):
        return controlled_soft_scores(
            model, TOKENS, target=7, scores=scores, controls=controls, n_draws=2,
            mask_seed=4, generator=torch.Generator().manual_seed(0),
        )  # fmt: skip

    assert soft(copy, ("rank",))["rank"] == soft(random, ("rank",))["rank"]
    plain_copy = soft_scores(
        model, TOKENS, target=7, scores=copy, n_draws=2, generator=torch.Generator().manual_seed(4)
    )
    plain_random = soft_scores(
        model,
        TOKENS,
        target=7,
        scores=random,
        n_draws=2,
        generator=torch.Generator().manual_seed(4),
    )
    assert plain_copy.soft_nc != plain_random.soft_nc
