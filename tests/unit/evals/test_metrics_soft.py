"""Soft-NC / Soft-NS (ReAGent's recipe) against closed forms and explicit reruns.

``one_position_model`` is a hand-built one-layer attention-only HookedTransformer whose
next-token distribution depends only on the input embedding of one context position ``j``:
the single head attends (weight 1 − O(e^-70)) to position ``j`` through the positional
embedding alone (which masking never touches), reads the token-content dimensions of that
position and writes them into the only dimensions the unembedding reads.
"""

import math

import numpy as np
import pytest
import torch

from heta_lens.evals.metrics import (
    SoftScores,
    hellinger_distance,
    log_ratio,
    normalize_attribution,
    random_attribution,
    soft_scores,
)
from heta_lens.hooks.guard import hook_point_hook_count
from tests.conftest import make_model, model_params, oracle_tolerance
from tests.unit import oracles

POS, CONTENT, OUT = slice(0, 16), slice(16, 24), slice(24, 32)


def one_position_model(j: int, *, seed: int = 0):
    """HookedTransformer (float64) whose prediction depends only on the embedding at ``j``."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=1,
        d_model=32,
        d_head=8,
        n_heads=1,
        n_ctx=16,
        d_vocab=50,
        attn_only=True,
        normalization_type=None,
        act_fn=None,
        dtype=torch.float64,
        seed=seed,
    )
    model = HookedTransformer(cfg, move_to_device=False)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.embed.W_E[:, CONTENT] = torch.randn(50, 8, generator=gen, dtype=torch.float64)
        model.pos_embed.W_pos[:, POS] = torch.eye(16, dtype=torch.float64)
        attn = model.blocks[0].attn
        attn.b_Q[0, 0] = 1.0  # every query is e_0
        attn.W_K[0, j, 0] = 200.0  # only position j's key matches: score 200/sqrt(8) ≈ 70.7
        attn.W_V[0, CONTENT] = torch.eye(8, dtype=torch.float64)
        attn.W_O[0, :, OUT] = torch.eye(8, dtype=torch.float64)
        model.unembed.W_U[OUT] = 3.0 * torch.randn(8, 50, generator=gen, dtype=torch.float64)
        model.unembed.b_U[:] = 0.5 * torch.randn(50, generator=gen, dtype=torch.float64)
    return model.eval()


def one_hot(n: int, i: int) -> torch.Tensor:
    out = torch.zeros(n, dtype=torch.float64)
    out[i] = 1.0
    return out


TOKENS = torch.tensor([1, 5, 7, 3, 9, 11, 4, 8])
TARGET = 7


def _explicit_probs(model, prefix: torch.Tensor, embeds: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        logits = oracles.full_logits_with_embeds(model, prefix[None], embeds[None])
    return logits[0, -1].softmax(-1).numpy()


def _d(p: np.ndarray, q: np.ndarray) -> float:
    return float(((np.sqrt(p) - np.sqrt(q)) ** 2).sum() / math.sqrt(2.0))


# ---------------------------------------------------------------- pure helpers
def test_hellinger_closed_forms():
    p = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    assert float(hellinger_distance(p, p)) == 0.0
    a, b = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 1.0])
    assert float(hellinger_distance(a, b)) == pytest.approx(math.sqrt(2.0), rel=1e-7)
    half = torch.tensor([0.5, 0.5], dtype=torch.float64)
    first = torch.tensor([1.0, 0.0], dtype=torch.float64)
    # ((√.5 − 1)² + .5) / √2 = (2 − √2) / √2 = √2 − 1
    assert float(hellinger_distance(half, first)) == pytest.approx(math.sqrt(2) - 1, rel=1e-12)


def test_hellinger_batches_symmetric_and_bounded():
    gen = torch.Generator().manual_seed(3)
    p = torch.rand(5, 7, generator=gen, dtype=torch.float64).softmax(-1)
    q = torch.rand(5, 7, generator=gen, dtype=torch.float64).softmax(-1)
    d = hellinger_distance(p, q)
    assert d.shape == (5,)
    torch.testing.assert_close(d, hellinger_distance(q, p))
    rows = [_d(p[i].numpy(), q[i].numpy()) for i in range(5)]
    torch.testing.assert_close(d, torch.tensor(rows, dtype=torch.float64))
    assert bool(((d >= 0) & (d <= math.sqrt(2))).all())


def test_normalize_attribution_clamps_and_sums_to_one():
    a = normalize_attribution(torch.tensor([2.0, -1.0, 0.0, 6.0], dtype=torch.float64))
    torch.testing.assert_close(a, torch.tensor([0.25, 0.0, 0.0, 0.75], dtype=torch.float64))
    for no_mass in ([0.0, 0.0, 0.0], [-1.0, -2.0, 0.0]):
        u = normalize_attribution(torch.tensor(no_mass, dtype=torch.float64))
        torch.testing.assert_close(u, torch.full((3,), 1 / 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="NaN or infinite"):
        normalize_attribution(torch.tensor([1.0, math.nan]))


def test_random_attribution_is_softmax_of_uniforms_from_the_generator():
    got = random_attribution(6, generator=torch.Generator().manual_seed(11))
    u = torch.rand(6, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    torch.testing.assert_close(got, u.softmax(-1), rtol=0, atol=0)
    assert float(got.sum()) == pytest.approx(1.0)
    # softmax of U(0,1): every weight within a factor e of every other
    assert float(got.max() / got.min()) < math.e


def test_log_ratio_rules():
    assert log_ratio([2.0, 4.0], [1.0, 2.0]) == pytest.approx(math.log(2.0))
    assert log_ratio([2, 4], [1, 2]) == pytest.approx(math.log(2.0))  # ints accepted
    assert log_ratio(torch.tensor([1.0, math.nan, 3.0]), np.array([2.0])) == pytest.approx(0.0)
    assert log_ratio([0.0, 0.0], [1.0]) == -math.inf
    assert log_ratio([1.0], [0.0]) == math.inf
    assert math.isnan(log_ratio([0.0], [0.0]))
    assert math.isnan(log_ratio([math.nan], [1.0]))
    with pytest.raises(ValueError, match="non-negative"):
        log_ratio([-1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="infinite"):
        log_ratio([math.inf], [1.0])


# ---------------------------------------------------------------- model-based
@pytest.mark.parametrize("model_id", model_params(["hooked-ln", "bridge"]))
def test_soft_scores_equal_explicit_reruns_of_the_same_mask_draws(model_id):
    model = make_model(model_id)
    prefix = TOKENS[:TARGET]
    scores = torch.tensor([0.5, -0.2, 1.5, 0.1, 0.0, 2.0, 0.7], dtype=torch.float64)
    n_draws = 3
    got = soft_scores(
        model,
        TOKENS,
        target=TARGET,
        scores=scores,
        n_draws=n_draws,
        generator=torch.Generator().manual_seed(5),
    )
    # oracle: the documented draw order, masks and distances rebuilt by hand
    a = scores.clamp_min(0) / scores.clamp_min(0).sum()
    x = oracles.embeddings(model, prefix)
    u = torch.rand(
        (n_draws, 2, TARGET, x.shape[-1]),
        generator=torch.Generator().manual_seed(5),
        dtype=torch.float64,
    )
    q = _explicit_probs(model, prefix, x)
    s0 = 1 - _d(_explicit_probs(model, prefix, torch.zeros_like(x)), q)
    soft_s = [
        1 - _d(_explicit_probs(model, prefix, x * (u[k, 0] < a[:, None])), q) for k in range(3)
    ]
    soft_c = [
        _d(_explicit_probs(model, prefix, x * (u[k, 1] < 1 - a[:, None])), q) for k in range(3)
    ]
    tol = oracle_tolerance(model)
    assert got.n_draws == n_draws
    assert got.s0 == pytest.approx(s0, rel=tol["rtol"], abs=1e-9)
    assert got.soft_s_draws == pytest.approx(soft_s, rel=tol["rtol"], abs=1e-9)
    assert got.soft_c_draws == pytest.approx(soft_c, rel=tol["rtol"], abs=1e-9)
    mean_s, mean_c = sum(soft_s) / n_draws, sum(soft_c) / n_draws
    assert got.soft_s == pytest.approx(mean_s, rel=tol["rtol"], abs=1e-9)
    assert got.soft_ns == pytest.approx(max(0.0, mean_s - s0) / (1 - s0), rel=1e-4, abs=1e-7)
    assert got.soft_nc == pytest.approx(mean_c / (1 - s0), rel=1e-4, abs=1e-7)


@pytest.mark.parametrize("model_id", model_params(["hooked-ln", "bridge"]))
def test_soft_scores_deterministic_under_seed_and_leave_model_untouched(model_id):
    model = make_model(model_id)
    model(TOKENS[None])  # a bridge installs its own lazy hooks on its first forward
    hooks = hook_point_hook_count(model)
    scores = torch.linspace(0.1, 1.0, TARGET, dtype=torch.float64)
    run = [
        soft_scores(
            model, TOKENS, target=TARGET, scores=scores, generator=torch.Generator().manual_seed(1)
        )
        for _ in range(2)
    ]
    assert run[0] == run[1]
    other = soft_scores(
        model, TOKENS, target=TARGET, scores=scores, generator=torch.Generator().manual_seed(2)
    )
    assert other.soft_c_draws != run[0].soft_c_draws
    assert torch.is_grad_enabled()
    assert all(p.requires_grad for p in model.parameters())
    assert hook_point_hook_count(model) == hooks


@pytest.mark.hooked
def test_one_hot_on_the_only_position_that_matters_scores_one_and_elsewhere_zero():
    j = 3
    model = one_position_model(j)
    gen = torch.Generator().manual_seed(0)
    perfect = soft_scores(model, TOKENS, target=TARGET, scores=one_hot(TARGET, j), generator=gen)
    # π ∈ {0, 1}: sufficiency keeps exactly token j (p_S = q), comprehensiveness drops exactly
    # token j (p_C = p_0), whatever the draws.
    assert perfect.soft_s == pytest.approx(1.0, abs=1e-12)
    assert perfect.soft_c == pytest.approx(1.0 - perfect.s0, rel=1e-12)
    assert perfect.soft_ns == pytest.approx(1.0, rel=1e-10)
    assert perfect.soft_nc == pytest.approx(1.0, rel=1e-10)
    wrong = soft_scores(model, TOKENS, target=TARGET, scores=one_hot(TARGET, 0), generator=gen)
    assert wrong.soft_ns == pytest.approx(0.0, abs=1e-12)
    assert wrong.soft_nc == pytest.approx(0.0, abs=1e-12)
    assert 0.0 < 1.0 - perfect.s0 <= math.sqrt(2)


@pytest.mark.hooked
def test_degenerate_zero_baseline_gives_nan():
    model = one_position_model(2)
    with torch.no_grad():
        model.unembed.W_U.zero_()  # output ignores the input: p_0 = q exactly, 1 − S0 = 0
    got = soft_scores(
        model, TOKENS, target=TARGET, scores=one_hot(TARGET, 2), generator=torch.Generator()
    )
    assert got.s0 == 1.0
    assert math.isnan(got.soft_ns) and math.isnan(got.soft_nc)


def _instances(n: int, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 50, (TARGET + 1,), generator=gen) for _ in range(n)]


@pytest.mark.hooked
def test_random_method_against_random_baseline_has_log_ratio_near_zero():
    """Method = random attribution: E[log ratio] = 0. Tolerance: 4 delta-method standard errors
    of ln(m̄/r̄) estimated from the same paired instances (a 4σ z-test; fixed seeds, so the
    outcome is deterministic). A perfect attribution must clear the same bar by far."""
    model = one_position_model(4)
    method_gen, baseline_gen = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    rows = []
    for toks in _instances(500, seed=0):
        m = soft_scores(
            model,
            toks,
            target=TARGET,
            scores=random_attribution(TARGET, generator=method_gen),
            generator=method_gen,
        )
        r = soft_scores(
            model,
            toks,
            target=TARGET,
            scores=random_attribution(TARGET, generator=baseline_gen),
            generator=baseline_gen,
        )
        rows.append((m.soft_ns, r.soft_ns, m.soft_nc, r.soft_nc))
    values = np.array(rows)
    n = len(values)
    for m, r in ((values[:, 0], values[:, 1]), (values[:, 2], values[:, 3])):
        cov = np.cov(m, r)
        se = math.sqrt(
            cov[0, 0] / m.mean() ** 2
            + cov[1, 1] / r.mean() ** 2
            - 2 * cov[0, 1] / (m.mean() * r.mean())
        ) / math.sqrt(n)
        assert se < 0.1  # the test has power
        assert abs(log_ratio(m, r)) < 4 * se
    perfect_ns = [
        soft_scores(
            model, t, target=TARGET, scores=one_hot(TARGET, 4), generator=method_gen
        ).soft_ns
        for t in _instances(20, seed=0)
    ]
    assert log_ratio(perfect_ns, values[:20, 1]) > 1.0


def test_validation_errors():
    model = make_model("bridge")
    gen = torch.Generator()
    with pytest.raises(ValueError, match="one entry per context token"):
        soft_scores(
            model, TOKENS, target=TARGET, scores=torch.ones(3, dtype=torch.float64), generator=gen
        )
    with pytest.raises(ValueError, match="n_draws"):
        soft_scores(
            model, TOKENS, target=TARGET, scores=torch.ones(TARGET), n_draws=0, generator=gen
        )
    with pytest.raises(ValueError, match="n_draws"):
        SoftScores(
            soft_s=1.0,
            soft_c=0.0,
            s0=0.0,
            soft_ns=1.0,
            soft_nc=0.0,
            n_draws=0,
            soft_s_draws=(1.0,),
            soft_c_draws=(0.0,),
        )
