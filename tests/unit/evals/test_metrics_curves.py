"""AOPC deletion / insertion curves against explicit reruns and a closed-form model."""

import json

import pytest
import torch

from heta_lens.evals.metrics import AopcCurves, aopc_curves
from tests.conftest import make_model, model_params, oracle_tolerance
from tests.unit import oracles
from tests.unit.evals.test_metrics_soft import one_position_model

TOKENS = torch.tensor([1, 5, 7, 3, 9, 11, 4, 8, 2, 6, 13, 10])
TARGET = 10
SCORES = torch.tensor([0.3, -0.1, 0.9, 0.3, 0.0, 1.2, 0.3, -0.5, 0.2, 0.9], dtype=torch.float64)


def _order(scores: torch.Tensor) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))


def _p(model, prefix, embeds, target_id) -> float:
    with torch.no_grad():
        logits = oracles.full_logits_with_embeds(model, prefix[None], embeds[None])
    return float(logits[0, -1].softmax(-1)[target_id])


@pytest.mark.parametrize("model_id", model_params(["hooked-ln", "bridge"]))
def test_every_step_equals_an_explicit_rerun(model_id):
    model = make_model(model_id)
    prefix, target_id = TOKENS[:TARGET], int(TOKENS[TARGET])
    x = oracles.embeddings(model, prefix)
    got = aopc_curves(model, TOKENS, target=TARGET, scores=SCORES)
    order = _order(SCORES)
    ks = list(range(1, 11))  # ctx = 10, fractions 0.1 .. 1.0
    deletion, insertion = [], []
    for k in ks:
        dropped = x.clone()
        dropped[order[:k]] = 0.0
        kept = torch.zeros_like(x)
        kept[order[:k]] = x[order[:k]]
        deletion.append(_p(model, prefix, dropped, target_id))
        insertion.append(_p(model, prefix, kept, target_id))
    p_orig = _p(model, prefix, x, target_id)
    p_empty = _p(model, prefix, torch.zeros_like(x), target_id)
    tol = oracle_tolerance(model)
    approx = {"rel": tol["rtol"], "abs": 1e-12}
    assert got.k == tuple(ks)
    assert got.p_deletion == pytest.approx(deletion, **approx)
    assert got.p_insertion == pytest.approx(insertion, **approx)
    assert got.p_orig == pytest.approx(p_orig, **approx)
    assert got.p_empty == pytest.approx(p_empty, **approx)
    # deleting everything is the empty input; inserting everything is the original
    assert got.p_deletion[-1] == pytest.approx(got.p_empty, **approx)
    assert got.p_insertion[-1] == pytest.approx(got.p_orig, **approx)
    assert got.deletion_aopc == pytest.approx(sum(p_orig - p for p in deletion) / 10, **approx)
    assert got.insertion_aopc == pytest.approx(sum(p - p_empty for p in insertion) / 10, **approx)
    assert got.sufficiency_aopc == pytest.approx(sum(p_orig - p for p in insertion) / 10, **approx)


@pytest.mark.hooked
def test_perfect_ordering_beats_reversed_with_the_closed_form_areas():
    j = 4
    model = one_position_model(j)
    perfect = torch.arange(TARGET, 0, -1, dtype=torch.float64)  # descending: position 0 first
    perfect[j] = 100.0  # the one position that matters ranks first ...
    reversed_ = -perfect  # ... and last here
    x = oracles.embeddings(model, TOKENS[:TARGET])
    with torch.no_grad():
        q = oracles.full_logits_with_embeds(model, TOKENS[None, :TARGET], x[None])[0, -1]
    tokens = TOKENS.clone()
    tokens[TARGET] = int(q.argmax())  # explain the model's own prediction
    best = aopc_curves(model, tokens, target=TARGET, scores=perfect)
    worst = aopc_curves(model, tokens, target=TARGET, scores=reversed_)
    gap = best.p_orig - best.p_empty
    assert gap > 0.05
    # only position j matters: a curve is p_empty / p_orig from the step that reaches j on
    assert best.deletion_aopc == pytest.approx(gap, rel=1e-10)
    assert best.insertion_aopc == pytest.approx(gap, rel=1e-10)
    assert worst.deletion_aopc == pytest.approx(gap / 10, rel=1e-10)
    assert worst.insertion_aopc == pytest.approx(gap / 10, rel=1e-10)
    assert best.deletion_aopc > worst.deletion_aopc
    assert best.insertion_aopc > worst.insertion_aopc
    assert best.sufficiency_aopc == pytest.approx(0.0, abs=1e-12)


def test_custom_fractions_rounding_and_plot_ready_output():
    model = make_model("bridge")
    got = aopc_curves(model, TOKENS, target=TARGET, scores=SCORES, fractions=(0.05, 0.3, 0.7))
    assert got.fractions == (0.05, 0.3, 0.7)
    assert got.k == (1, 3, 7)  # max(1, ceil(f·ctx)); 0.3·10 and 0.7·10 are not rounded up
    data = json.loads(json.dumps(got.to_dict()))
    assert set(data) >= {"fractions", "k", "p_deletion", "p_insertion", "p_orig", "p_empty"}
    assert data["deletion_aopc"] == pytest.approx(got.deletion_aopc)
    assert all(0.0 <= p <= 1.0 for p in got.p_deletion + got.p_insertion)


def test_validation():
    model = make_model("bridge")
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        aopc_curves(model, TOKENS, target=TARGET, scores=SCORES, fractions=(1.5,))
    with pytest.raises(ValueError, match="one entry per context token"):
        aopc_curves(model, TOKENS, target=TARGET - 1, scores=SCORES)
    with pytest.raises(ValueError, match="one entry per fraction"):
        AopcCurves(
            fractions=(0.1,),
            k=(1,),
            p_deletion=(0.1, 0.2),
            p_insertion=(0.1,),
            p_orig=0.3,
            p_empty=0.1,
            mask="zero",
        )
