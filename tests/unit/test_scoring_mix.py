"""The geometric and rank mixes (``HetaConfig.mix``) against hand values and scipy's ranks."""

from typing import Any

import numpy as np
import pytest
import torch
from scipy.stats import rankdata

import heta_lens as H
from heta_lens.scoring import combine, rank_term
from tests.conftest import make_model, model_params

GATE = torch.tensor([0.0, 0.2, 0.3, 0.5], dtype=torch.float64)
S = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
I = torch.tensor([0.4, 0.05, 0.5, 0.05], dtype=torch.float64)  # noqa: E741
ALL = torch.ones(4, dtype=torch.bool)
MEDIAN: Any = "median"  # not a valid mix (typed Any to reach the runtime check)


def _rank_oracle(values: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """scipy's average ranks over the support, shifted to 0 at the lowest, summing to 1."""
    out = np.zeros(values.numel())
    keep = support.numpy()
    r = rankdata(values.numpy()[keep], method="average")
    rho = r - r.min()
    if rho.sum() > 0:
        out[keep] = rho / rho.sum()
    return torch.from_numpy(out)


def test_rank_term_hand_values():
    got = rank_term(torch.tensor([5.0, 0.3, 9.0, 0.3], dtype=torch.float64), ALL)
    torch.testing.assert_close(got, torch.tensor([0.375, 0.0, 0.625, 0.0]).double())
    # positions outside the support are neither ranked nor scored
    support = torch.tensor([False, True, True, True])
    got = rank_term(torch.tensor([100.0, 1.0, 2.0, 2.0], dtype=torch.float64), support)
    torch.testing.assert_close(got, torch.tensor([0.0, 0.0, 0.5, 0.5]).double())


@pytest.mark.parametrize("seed", range(5))
def test_rank_term_matches_scipy_with_ties(seed):
    g = torch.Generator().manual_seed(seed)
    values = torch.randint(0, 6, (17,), generator=g).double()  # many ties
    support = torch.rand(17, generator=g) > 0.3
    torch.testing.assert_close(
        rank_term(values, support), _rank_oracle(values, support), rtol=1e-15, atol=1e-15
    )


def test_rank_term_of_constant_or_empty_is_zero():
    assert rank_term(torch.full((4,), 0.25, dtype=torch.float64), ALL).tolist() == [0.0] * 4
    none = torch.zeros(4, dtype=torch.bool)
    assert rank_term(S, none).tolist() == [0.0] * 4


def test_geometric_hand_values():
    got = combine(GATE, S, I, beta=0.5, gamma=0.5, mix="geometric")
    torch.testing.assert_close(got, GATE * torch.sqrt(S * I), rtol=1e-15, atol=0)
    got = combine(GATE, S, I, beta=1.0, gamma=3.0, mix="geometric")
    torch.testing.assert_close(got, GATE * S**0.25 * I**0.75, rtol=1e-15, atol=0)


def test_geometric_of_identical_terms_is_the_term():
    got = combine(GATE, S, S.clone(), beta=0.3, gamma=0.9, mix="geometric")
    torch.testing.assert_close(got, GATE * S, rtol=1e-15, atol=0)


def test_geometric_flat_term_keeps_the_other_ranking():
    flat = torch.full((4,), 0.25, dtype=torch.float64)
    got = combine(GATE, flat, I, beta=0.5, gamma=0.5, mix="geometric")
    torch.testing.assert_close(got, GATE * 0.5 * torch.sqrt(I), rtol=1e-15, atol=0)


def test_geometric_missing_term_is_the_identity():
    torch.testing.assert_close(
        combine(GATE, S, None, beta=0.2, gamma=7.0, mix="geometric"), GATE * S
    )
    torch.testing.assert_close(
        combine(GATE, None, I, beta=7.0, gamma=0.2, mix="geometric"), GATE * I
    )
    with pytest.raises(ValueError, match="beta \\+ gamma > 0"):
        combine(GATE, S, None, beta=0.0, gamma=1.0, mix="geometric")


def test_rank_mix_hand_values():
    got = combine(GATE, S, I, beta=0.5, gamma=0.5, mix="rank")
    # over positions 1..3: S ranks 1, 2, 3 -> rho 0, 1, 2 -> 0, 1/3, 2/3
    # I = 0.05, 0.5, 0.05 -> ranks 1.5, 3, 1.5 -> rho 0, 1.5, 0 -> 0, 1, 0
    expected = GATE * torch.tensor([0.0, 0.0, 0.5 / 3 + 0.5, 1.0 / 3], dtype=torch.float64)
    torch.testing.assert_close(got, expected, rtol=1e-15, atol=0)


def test_rank_mix_invariant_under_monotone_transforms():
    g = torch.Generator().manual_seed(0)
    s, i = torch.rand(9, generator=g).double(), torch.rand(9, generator=g).double()
    gate = torch.rand(9, generator=g).double()
    gate[0] = 0.0
    base = combine(gate, s, i, beta=0.4, gamma=0.6, mix="rank")
    moved = combine(gate, torch.exp(5 * s), i**3 + 2.0, beta=0.4, gamma=0.6, mix="rank")
    torch.testing.assert_close(moved, base, rtol=1e-15, atol=0)
    assert float(base[0]) == 0.0


def test_rank_mix_constant_term_contributes_nothing():
    flat = torch.full((4,), 0.25, dtype=torch.float64)
    got = combine(GATE, flat, I, beta=0.5, gamma=0.5, mix="rank")
    only_i = combine(GATE, None, I, beta=0.5, gamma=0.5, mix="rank")
    torch.testing.assert_close(got, only_i, rtol=0, atol=0)


def test_additive_is_unchanged_and_unknown_mix_refused():
    torch.testing.assert_close(combine(GATE, S, I, beta=0.5, gamma=0.5), GATE * (S + I) / 2)
    with pytest.raises(ValueError, match="unknown mix 'median'"):
        combine(GATE, S, I, beta=0.5, gamma=0.5, mix=MEDIAN)


def test_config_validates_the_mix():
    with pytest.raises(ValueError, match="unknown mix"):
        H.HetaConfig(mix=MEDIAN)
    with pytest.raises(ValueError, match="beta \\+ gamma > 0"):
        H.HetaConfig(mix="geometric", beta=0.0, gamma=0.0)
    assert H.HetaConfig().mix == "additive"
    assert H.HetaConfig(mix="rank").to_dict()["mix"] == "rank"


@pytest.mark.parametrize("model_id", model_params(["hooked-ln", "bridge"]))
def test_live_variants_against_raw_components(model_id, tokens):
    """Registered variants recombine the result's own raw S and I as their definitions say."""
    model = make_model(model_id)
    for name in ("heta_geo", "heta_rankmix", "heta_max"):
        spec = H.get_method(name)
        r = spec(model, tokens, target=6, config=spec.default_config.with_probes(2))
        assert isinstance(r, H.HetaResult)
        assert r.curvature is not None and r.information is not None
        g = r.gate.clone()
        g[0] = 0.0
        g = g / g.sum()
        s_sum, i_sum = r.curvature / r.curvature.sum(), r.information / r.information.sum()
        if name == "heta_geo":
            expected = g * torch.sqrt(s_sum * i_sum)
        elif name == "heta_rankmix":
            keep = g > 0
            expected = g * (0.5 * _rank_oracle(s_sum, keep) + 0.5 * _rank_oracle(i_sum, keep))
        else:
            s_max, i_max = r.curvature / r.curvature.max(), r.information / r.information.max()
            expected = g * (0.5 * s_max + 0.5 * i_max)
        torch.testing.assert_close(r.scores, expected, rtol=1e-13, atol=1e-16)
        assert float(r.scores[0]) == 0.0


def test_contrast_with_itself_scores_zero_under_every_mix():
    """Contrast(a, a): objective log p(a) − log p(a) ≡ 0, so S = I = 0 and every mix gives 0."""
    model = make_model("bridge")
    tokens = torch.tensor([1, 5, 7, 3, 9, 11, 4])
    for name in ("heta_geo", "heta_rankmix", "heta_max"):
        spec = H.get_method(name)
        config = spec.default_config.with_probes(1)
        r = spec(model, tokens, target=H.Contrast(3, 3), config=config)
        assert bool((r.scores == 0).all()), name
