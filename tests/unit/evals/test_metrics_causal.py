"""Causal validity (Patch-Corr, Intervention@5, misattribution) against TL patching and reruns.

Oracles: TransformerLens's own ``patching.get_act_patch_resid_pre`` (layer 0 = the
single-token intervention), explicit reruns with replaced embeddings, and
``one_position_model`` (tests/unit/evals/test_metrics_soft.py), whose prediction provably
depends on the embedding of one position only (it copies that token's content to the output).
"""

import math

import pytest
import torch
from scipy.stats import rankdata, spearmanr

from heta_lens.evals.metrics.causal import (
    causal_scores,
    check_corruption,
    group_effect,
    token_effects,
)
from heta_lens.evals.metrics.rank import average_ranks, spearman
from heta_lens.evals.metrics.soft import random_attribution
from heta_lens.hooks.guard import hook_point_hook_count
from tests.conftest import make_model, model_params, oracle_tolerance
from tests.unit import oracles
from tests.unit.evals.test_metrics_soft import one_position_model

TOKENS = torch.tensor([1, 5, 7, 3, 9, 11, 4, 8])
TARGET = 7


def _log_p(model, prefix: torch.Tensor, embeds: torch.Tensor, target_id: int) -> float:
    with torch.no_grad():
        logits = model.run_with_hooks(
            prefix[None],
            fwd_hooks=[("hook_embed", lambda act, hook: embeds[None].to(act.dtype))],  # noqa: ARG005
        )
    return float(logits[0, -1].log_softmax(-1)[target_id])


def test_average_ranks_and_spearman_match_scipy_with_ties():
    a = torch.tensor([3.0, 1.0, 3.0, 2.0, 2.0, 7.0])
    b = torch.tensor([0.5, 0.5, 0.1, 0.9, 0.2, 0.3])
    assert average_ranks(a).tolist() == (rankdata(a.numpy()) - 1).tolist()
    assert spearman(a, b) == pytest.approx(spearmanr(a.numpy(), b.numpy()).statistic, abs=1e-12)
    assert math.isnan(spearman(torch.ones(4), b[:4]))
    with pytest.raises(ValueError, match="equal lengths"):
        spearman(a, b[:3])


@pytest.mark.parametrize("model_id", model_params(["hooked-ln", "hooked-gqa", "bridge"]))
@pytest.mark.parametrize("corruption", ["noise", "zero", "token:2"])
def test_single_token_effects_equal_transformer_lens_patching(model_id, corruption):
    from transformer_lens import patching

    model = make_model(model_id)
    n_draws = 2 if corruption == "noise" else 1
    fx = token_effects(
        model,
        TOKENS,
        target=TARGET,
        corruption=corruption,
        n_draws=n_draws,
        generator=torch.Generator().manual_seed(3),
    )
    prefix = TOKENS[:TARGET][None]
    target_id = int(TOKENS[TARGET])

    def metric(logits):
        return logits[0, -1].log_softmax(-1)[target_id]

    patched = []
    for rows in fx.corrupted:
        corrupt = [("hook_embed", lambda act, hook, r=rows: r[None].to(act.dtype))]  # noqa: ARG005
        with torch.no_grad(), model.hooks(fwd_hooks=corrupt):
            _, corrupted_cache = model.run_with_cache(
                prefix, names_filter=lambda name: name.endswith("hook_resid_pre")
            )
        with torch.no_grad():
            patched.append(
                patching.get_act_patch_resid_pre(model, prefix, corrupted_cache, metric)[0]
            )
    clean = _log_p(model, TOKENS[:TARGET], oracles.embeddings(model, TOKENS[:TARGET]), target_id)
    expected = clean - torch.stack(patched).double().mean(0)
    tol = oracle_tolerance(model)
    assert fx.corrupted.shape[0] == n_draws
    assert fx.log_p_clean == pytest.approx(clean, rel=tol["rtol"], abs=1e-8)
    # TL's patching stores each metric value in a float32 tensor (torch.zeros(...) with the
    # default dtype), so the oracle itself is exact only to float32 rounding of log P.
    f32 = torch.finfo(torch.float32).eps * max(abs(clean), float(torch.stack(patched).abs().max()))
    torch.testing.assert_close(fx.delta.double(), expected.cpu(), rtol=tol["rtol"], atol=2 * f32)
    assert hook_point_hook_count(model) == 0


@pytest.mark.parametrize("model_id", model_params(["hooked-ln", "bridge"]))
def test_group_effect_equals_an_explicit_rerun(model_id):
    model = make_model(model_id)
    fx = token_effects(model, TOKENS, target=TARGET, n_draws=3)
    positions = torch.tensor([1, 4, 6])
    got = group_effect(model, TOKENS, target=TARGET, positions=positions, effects=fx)
    target_id = int(TOKENS[TARGET])
    values = []
    for rows in fx.corrupted:
        x = fx.clean.clone()
        x[positions] = rows[positions]
        values.append(_log_p(model, TOKENS[:TARGET], x, target_id))
    expected = fx.log_p_clean - sum(values) / len(values)
    assert got == pytest.approx(expected, rel=oracle_tolerance(model)["rtol"], abs=1e-8)


def _carrier_case(j: int, seed: int = 0):
    """one_position_model(j) with the target set to its own top prediction."""
    model = one_position_model(j, seed=seed)
    tokens = TOKENS.clone()
    with torch.no_grad():
        tokens[TARGET] = int(model(tokens[None, :TARGET])[0, -1].argmax())
    return model, tokens


@pytest.mark.hooked
@pytest.mark.parametrize("j", [0, 3, 6])
def test_only_the_carrier_token_has_an_effect_and_the_oracle_gets_patch_corr_one(j):
    model, tokens = _carrier_case(j)
    # Token-level corruption (the model reads token content only through position j; noise
    # would also perturb the positional dimensions its attention keys read).
    fx = token_effects(model, tokens, target=TARGET, corruption="zero")
    others = [i for i in range(TARGET) if i != j]
    assert fx.delta[j] > 0.1  # zeroing the copied content lowers the top prediction
    assert fx.delta[others].abs().max() < 1e-12  # nothing else can move the prediction
    oracle = torch.zeros(TARGET, dtype=torch.float64)
    oracle[j] = 1.0
    good = causal_scores(model, tokens, target=TARGET, scores=oracle, effects=fx, top=1)
    assert good.patch_corr > 0.9
    assert good.misattribution == 0.0
    assert good.intervention_at_k == pytest.approx(
        group_effect(model, tokens, target=TARGET, positions=torch.arange(TARGET), effects=fx)
    )
    wrong = torch.arange(TARGET, dtype=torch.float64)
    wrong[j] = -1.0  # ranks the carrier last
    bad = causal_scores(model, tokens, target=TARGET, scores=wrong, effects=fx, k=1, top=1)
    assert bad.patch_corr < -0.3
    assert bad.misattribution == 1.0
    assert bad.intervention_at_k == pytest.approx(0.0, abs=1e-12)


@pytest.mark.hooked
def test_random_attributions_have_patch_corr_near_zero():
    model, tokens = _carrier_case(3)
    fx = token_effects(model, tokens, target=TARGET, corruption="zero")
    gen = torch.Generator().manual_seed(0)
    values = torch.tensor(
        [
            causal_scores(
                model,
                tokens,
                target=TARGET,
                scores=random_attribution(TARGET, generator=gen),
                effects=fx,
            ).patch_corr
            for _ in range(400)
        ]
    )
    se = float(values.std()) / math.sqrt(len(values))
    assert abs(float(values.mean())) < 4 * se
    assert float(values.std()) > 0.1  # they do vary: the mean is not 0 by construction


def test_validation_and_model_left_untouched():
    model = make_model("bridge")
    grad_before = torch.is_grad_enabled()
    with pytest.raises(ValueError, match="unknown corruption"):
        token_effects(model, TOKENS, target=TARGET, corruption="blur")
    with pytest.raises(ValueError, match="n_draws"):
        token_effects(model, TOKENS, target=TARGET, n_draws=0)
    with pytest.raises(ValueError, match="out of range"):
        token_effects(model, TOKENS, target=99)
    fx = token_effects(model, TOKENS, target=TARGET, n_draws=1)
    with pytest.raises(ValueError, match="one entry per context token"):
        causal_scores(model, TOKENS, target=TARGET, scores=torch.ones(3), effects=fx)
    with pytest.raises(ValueError, match="effects are for a context"):
        causal_scores(model, TOKENS, target=5, scores=torch.ones(5), effects=fx)
    with pytest.raises(ValueError, match="k and top"):
        causal_scores(model, TOKENS, target=TARGET, scores=torch.ones(TARGET), effects=fx, k=0)
    assert math.isnan(
        causal_scores(
            model, TOKENS, target=TARGET, scores=torch.ones(TARGET), effects=fx
        ).patch_corr
    )
    assert check_corruption("token:12") == "token:12"
    assert torch.is_grad_enabled() == grad_before
    assert hook_point_hook_count(model) == 0
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.hooked
def test_noise_is_reproducible_and_scaled_by_the_embedding_std():
    model = make_model("hooked-ln")
    a = token_effects(model, TOKENS, target=TARGET, generator=torch.Generator().manual_seed(9))
    b = token_effects(model, TOKENS, target=TARGET, generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(a.delta, b.delta, rtol=0, atol=0)
    w = model.W_E.detach().double()
    noise = (a.corrupted - a.clean[None]).double()
    assert float(noise.std()) == pytest.approx(3.0 * float(w.std()), rel=0.05)
