"""``hard_topk_kl`` against explicit masking reruns and a model where one position matters."""

import math

import pytest
import torch

from heta_lens.evals.metrics import HardTopK, hard_topk_kl
from heta_lens.hooks import ModelAdapter
from heta_lens.masking import mask_rows
from tests.conftest import make_model, model_params, oracle_tolerance
from tests.unit import oracles
from tests.unit.evals.test_metrics_soft import one_position_model

TOKENS = torch.tensor([1, 5, 7, 3, 9, 11, 4, 8, 2, 6, 13, 10])
TARGET = 10  # ctx = 10: fractions 0.1/0.2/0.3 → k = 1/2/3 (not 4: 0.3·10 rounds up in binary)
SCORES = torch.tensor([0.3, -0.1, 0.9, 0.3, 0.0, 1.2, 0.3, -0.5, 0.2, 0.9], dtype=torch.float64)


def _top(scores: torch.Tensor, k: int) -> list[int]:
    """Hand ranking: descending score, ties to the earlier position."""
    return sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))[:k]


def _kl(model, prefix, embeds) -> float:
    return oracles.explicit_kl(model, prefix, embeds)


@pytest.mark.parametrize("model_id", model_params(["hooked-ln", "hooked-gqa", "bridge"]))
@pytest.mark.parametrize("mask", ["zero", "mean", "token:17"])
def test_hard_topk_kl_equals_explicit_masking_reruns(model_id, mask):
    model = make_model(model_id)
    prefix = TOKENS[:TARGET]
    x = oracles.embeddings(model, prefix)
    with torch.no_grad():
        repl = mask_rows(ModelAdapter(model), x, mask)
    fractions = (0.1, 0.2, 0.3, 0.55)
    got = hard_topk_kl(model, TOKENS, target=TARGET, scores=SCORES, fractions=fractions, mask=mask)
    nc, ns = [], []
    for k in (1, 2, 3, 6):
        top = _top(SCORES, k)
        dropped = x.clone()
        dropped[top] = repl[top]
        kept = repl.clone()
        kept[top] = x[top]
        nc.append(_kl(model, prefix, dropped))
        ns.append(-_kl(model, prefix, kept))
    tol = oracle_tolerance(model)
    assert got.k == (1, 2, 3, 6)
    assert got.fractions == fractions and got.mask == mask
    assert got.nc_per_fraction == pytest.approx(nc, rel=tol["rtol"], abs=1e-9)
    assert got.ns_per_fraction == pytest.approx(ns, rel=tol["rtol"], abs=1e-9)
    assert got.nc == pytest.approx(sum(nc) / 4, rel=tol["rtol"], abs=1e-9)
    assert got.ns == pytest.approx(sum(ns) / 4, rel=tol["rtol"], abs=1e-9)
    assert got.ns <= 0.0 <= got.nc


def test_ties_broken_by_position():
    # ties: 0.9 at positions 2 and 9, 0.3 at 0, 3 and 6; the earlier position ranks first
    assert _top(SCORES, 3) == [5, 2, 9]
    model = make_model("bridge")
    prefix = TOKENS[:TARGET]
    x = oracles.embeddings(model, prefix)
    got = hard_topk_kl(model, TOKENS, target=TARGET, scores=SCORES, fractions=(0.5,))
    dropped = x.clone()
    dropped[[5, 2, 9, 0, 3]] = 0.0  # the top-5 ends with the first two of the 0.3 tie (0, 3)
    assert got.k == (5,)
    tol = oracle_tolerance(model)
    assert got.nc == pytest.approx(_kl(model, prefix, dropped), rel=tol["rtol"], abs=1e-9)


@pytest.mark.hooked
def test_closed_form_on_a_model_where_one_position_matters():
    j = 6
    model = one_position_model(j)
    perfect = torch.zeros(TARGET, dtype=torch.float64)
    perfect[j] = 1.0
    got = hard_topk_kl(model, TOKENS, target=TARGET, scores=perfect)
    x = oracles.embeddings(model, TOKENS[:TARGET])
    only_j_masked = x.clone()
    only_j_masked[j] = 0.0
    full = _kl(model, TOKENS[:TARGET], only_j_masked)  # KL(q ‖ p with token j masked)
    assert full > 0.1
    # NC: every top-k contains j, so each fraction gives the same KL; NS: keeping j keeps q.
    assert got.nc_per_fraction == pytest.approx([full] * 3, rel=1e-10)
    assert got.ns == pytest.approx(0.0, abs=1e-12)
    reversed_ = hard_topk_kl(model, TOKENS, target=TARGET, scores=-perfect)
    assert reversed_.nc == pytest.approx(0.0, abs=1e-12)
    assert reversed_.ns == pytest.approx(-full, rel=1e-10)


def test_validation():
    model = make_model("bridge")
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        hard_topk_kl(model, TOKENS, target=TARGET, scores=SCORES, fractions=(0.0, 0.5))
    with pytest.raises(ValueError, match="empty"):
        hard_topk_kl(model, TOKENS, target=TARGET, scores=SCORES, fractions=())
    with pytest.raises(ValueError, match="mask"):
        hard_topk_kl(model, TOKENS, target=TARGET, scores=SCORES, mask="blank")
    with pytest.raises(ValueError, match="NaN"):
        hard_topk_kl(model, TOKENS, target=TARGET, scores=SCORES * math.nan)
    with pytest.raises(ValueError, match="one entry per fraction"):
        HardTopK(
            nc=0.0,
            ns=0.0,
            fractions=(0.1,),
            k=(1, 2),
            nc_per_fraction=(0.0,),
            ns_per_fraction=(0.0,),
            mask="zero",
        )
