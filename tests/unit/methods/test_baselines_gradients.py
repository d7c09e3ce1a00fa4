import typing

import numpy as np
import pytest
import torch
from captum.attr import InputXGradient, IntegratedGradients, Saliency

from heta_lens.hooks import ModelAdapter
from heta_lens.inputs import prepare
from heta_lens.methods import gradients as G
from tests.conftest import oracle_tolerance
from tests.unit.test_model_state import _assert_same as assert_untouched
from tests.unit.test_model_state import _snapshot as snapshot

TARGET = 5


def request(model, tokens, target=TARGET):
    adapter = ModelAdapter(model)
    return adapter, prepare(adapter, tokens, target)


def captum_forward(adapter, req):
    """The scalar log P(x_T | x_<T) on a batch of embedding matrices, for Captum."""

    def forward(embeds):
        ids = req.prefix[None].expand(embeds.shape[0], -1)
        return adapter.last_log_probs(ids, embeds)[:, req.target_id]

    return forward


def embeddings(model, req):
    return model.embed(req.prefix[None]).detach()  # [1, ctx, d_model]


def captum_ig(model, tokens, cfg, target=TARGET):
    adapter, req = request(model, tokens, target)
    x = embeddings(model, req)
    if cfg.baseline == "zero":
        base = torch.zeros_like(x)
    else:
        base = model.embed(torch.arange(model.cfg.d_vocab)[None]).detach().mean(1, keepdim=True)
        base = base.expand_as(x)
    ig = IntegratedGradients(captum_forward(adapter, req))
    out = ig.attribute(
        x.clone().requires_grad_(True),
        baselines=base,
        n_steps=cfg.n_steps,
        method=cfg.method,
        internal_batch_size=cfg.internal_batch_size,
    )
    return out[0].detach()


def test_saliency_matches_captum(model, tokens):
    adapter, req = request(model, tokens)
    expected = Saliency(captum_forward(adapter, req)).attribute(
        embeddings(model, req).clone().requires_grad_(True)
    )
    torch.testing.assert_close(
        G.saliency_dims(adapter, req), expected[0], **oracle_tolerance(model)
    )


def test_input_x_gradient_matches_captum(model, tokens):
    adapter, req = request(model, tokens)
    ixg = InputXGradient(captum_forward(adapter, req))
    expected = ixg.attribute(embeddings(model, req).clone().requires_grad_(True))
    got = G.input_x_gradient_dims(adapter, req)
    torch.testing.assert_close(got, expected[0], **oracle_tolerance(model))


@pytest.mark.parametrize("baseline", ["zero", "mean"])
@pytest.mark.parametrize("method", ["gausslegendre", "riemann_trapezoid", "riemann_middle"])
def test_integrated_gradients_match_captum(model, tokens, method, baseline):
    cfg = G.IntegratedGradientsConfig(
        n_steps=12, method=method, baseline=baseline, internal_batch_size=5
    )
    adapter, req = request(model, tokens)
    got = G.integrated_gradients_dims(adapter, req, config=cfg)
    torch.testing.assert_close(got, captum_ig(model, tokens, cfg), **oracle_tolerance(model))


@pytest.mark.parametrize("aggregate", ["l2", "sum"])
def test_scores_aggregate_captum_attributions_over_d_model(model, tokens, aggregate):
    """Public scores = Captum's per-dimension attributions reduced by norm / sum over d_model."""
    adapter, req = request(model, tokens)
    x = embeddings(model, req)
    forward = captum_forward(adapter, req)
    tol = oracle_tolerance(model)

    def reduce(attr):
        return attr[0].norm(dim=-1) if aggregate == "l2" else attr[0].sum(dim=-1)

    sal = G.saliency(model, tokens, target=TARGET, config=G.SaliencyConfig(aggregate=aggregate))
    torch.testing.assert_close(
        sal.scores, reduce(Saliency(forward).attribute(x.clone().requires_grad_(True))), **tol
    )
    ixg = G.input_x_gradient(
        model, tokens, target=TARGET, config=G.InputXGradientConfig(aggregate=aggregate)
    )
    torch.testing.assert_close(
        ixg.scores, reduce(InputXGradient(forward).attribute(x.clone().requires_grad_(True))), **tol
    )
    cfg = G.IntegratedGradientsConfig(n_steps=8, aggregate=aggregate)
    ig = G.integrated_gradients(model, tokens, target=TARGET, config=cfg)
    torch.testing.assert_close(ig.scores, reduce(captum_ig(model, tokens, cfg)[None]), **tol)


def test_aggregation_definitions_from_the_raw_gradient(model, tokens):
    """l2/sum definitions against a plain autograd gradient (no Captum in the loop)."""
    adapter, req = request(model, tokens)
    x = embeddings(model, req)[0].requires_grad_(True)
    (g,) = torch.autograd.grad(captum_forward(adapter, req)(x[None]).sum(), x)
    x = x.detach()
    tol = oracle_tolerance(model)

    def run(fn, cfg_cls, aggregate):
        return fn(model, tokens, target=TARGET, config=cfg_cls(aggregate=aggregate)).scores

    torch.testing.assert_close(run(G.saliency, G.SaliencyConfig, "l2"), g.norm(dim=-1), **tol)
    torch.testing.assert_close(run(G.saliency, G.SaliencyConfig, "sum"), g.abs().sum(-1), **tol)
    ixg_l2 = run(G.input_x_gradient, G.InputXGradientConfig, "l2")
    torch.testing.assert_close(ixg_l2, (x * g).norm(dim=-1), **tol)
    assert bool((ixg_l2 >= 0).all())
    ixg_sum = run(G.input_x_gradient, G.InputXGradientConfig, "sum")
    torch.testing.assert_close(ixg_sum, torch.einsum("pd,pd->p", x, g), **tol)
    assert bool((ixg_sum < 0).any()), "the signed sum should keep negative contributions"


def test_ig_completeness_with_exact_quadrature(model, tokens):
    """Σ IG = f(E) − f(E') for the pure helper with float64 Gauss–Legendre weights.

    512 nodes: on RMSNorm models the zero baseline makes f steep near α = 0 (RMSNorm of α·x
    varies on the scale α ~ √eps / rms(x)), so 48 nodes leave a 1e-3 (gqa) to 0.4 (bridge)
    relative gap there; 512 bring it to ≤ 1e-8.
    """
    adapter, req = request(model, tokens)
    f = captum_forward(adapter, req)
    x = embeddings(model, req)[0]
    for base in (torch.zeros_like(x), adapter.mean_embedding().expand_as(x)):
        nodes, weights = np.polynomial.legendre.leggauss(512)
        attr = G.path_integrated_gradients(
            f,
            x,
            base,
            step_sizes=torch.tensor(0.5 * weights),
            alphas=torch.tensor(0.5 * (1 + nodes)),
            internal_batch_size=128,
        )
        with torch.no_grad():
            delta = f(x[None]) - f(base[None])
        torch.testing.assert_close(attr.sum(), delta[0], **oracle_tolerance(model))


def test_ig_method_completeness_with_captum_tables(model, tokens):
    """Through the public method (Captum's tables): its step weights are rounded to float32
    (≤ 2⁻²⁴ ≈ 6e-8 relative each), so Σ IG = f(E) − f(E') to ~1e-7 relative, not 1e-10."""
    adapter, req = request(model, tokens)
    cfg = G.IntegratedGradientsConfig(n_steps=64, aggregate="sum", baseline="mean")
    scores = G.integrated_gradients(model, tokens, target=TARGET, config=cfg).scores
    f = captum_forward(adapter, req)
    x = embeddings(model, req)
    with torch.no_grad():
        delta = float(f(x) - f(adapter.mean_embedding().expand_as(x)))
    assert abs(float(scores.sum()) - delta) <= 1e-6 * abs(delta)


def test_quadrature_reproduces_captum_tables():
    from captum.attr._utils.approximation_methods import approximation_parameters

    for method in typing.get_args(G.IGMethod):
        for n in (2, 7, 32):
            steps_fn, alphas_fn = approximation_parameters(method)
            steps, alphas = G.quadrature(n, method)
            assert torch.equal(steps, torch.tensor(steps_fn(n)).float().double())
            assert torch.equal(alphas, torch.tensor(alphas_fn(n), dtype=torch.float64))


def test_internal_batch_size_does_not_change_ig(model, tokens):
    one = G.integrated_gradients(
        model, tokens, config=G.IntegratedGradientsConfig(n_steps=6, internal_batch_size=1)
    )
    all_ = G.integrated_gradients(
        model, tokens, config=G.IntegratedGradientsConfig(n_steps=6, internal_batch_size=100)
    )
    torch.testing.assert_close(one.scores, all_.scores, **oracle_tolerance(model))


FNS = [G.saliency, G.input_x_gradient, G.integrated_gradients]


@pytest.mark.parametrize("fn", FNS, ids=lambda f: f.__name__)
def test_causal_and_one_score_per_context_token(model, tokens, fn):
    changed = tokens.clone()
    changed[4:] = 2
    a, b = fn(model, tokens, target=3), fn(model, changed, target=3)
    assert a.scores.shape == (3,)
    assert torch.equal(a.scores, b.scores)
    assert a.method == fn.__name__
    assert fn(model, tokens).scores.shape == (tokens.numel() - 1,)


@pytest.mark.parametrize("grad_enabled", [True, False])
@pytest.mark.parametrize("fn", FNS, ids=lambda f: f.__name__)
def test_model_state_untouched(model, tokens, fn, grad_enabled):
    model(tokens[None])  # a bridge installs its lazy hooks on first use
    model.train()
    for i, p in enumerate(model.parameters()):
        p.requires_grad_(i % 2 == 0)
    with torch.set_grad_enabled(grad_enabled):
        before = snapshot(model)
        fn(model, tokens)
        assert_untouched(before, snapshot(model))


@pytest.mark.parametrize("fn", FNS, ids=lambda f: f.__name__)
def test_model_state_untouched_when_a_forward_raises(model, tokens, fn, monkeypatch):
    model(tokens[None])
    before = snapshot(model)
    calls = {"n": 0}
    original = ModelAdapter.last_log_probs

    def flaky(self, ids, embeds=None):
        calls["n"] += 1
        if calls["n"] == 2:  # the gradient forward, with the embedding hook registered

            def boom(act, hook):  # noqa: ARG001
                raise RuntimeError("boom")

            with self.model.hooks(fwd_hooks=[("blocks.0.attn.hook_pattern", boom)]):
                return original(self, ids, embeds)
        return original(self, ids, embeds)

    monkeypatch.setattr(ModelAdapter, "last_log_probs", flaky)
    with pytest.raises(RuntimeError, match="boom"):
        fn(model, tokens)
    assert calls["n"] == 2
    assert_untouched(before, snapshot(model))


@pytest.mark.parametrize("fn", FNS, ids=lambda f: f.__name__)
def test_bad_inputs_rejected_by_prepare(model, tokens, fn):
    with pytest.raises(ValueError, match="target 0 has no context"):
        fn(model, tokens, target=0)
    with pytest.raises(ValueError, match="out of range"):
        fn(model, tokens, target=len(tokens))
    with pytest.raises(TypeError, match="integer token ids"):
        fn(model, tokens.double())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_steps": 0},
        {"n_steps": 1, "method": "riemann_left"},
        {"method": "simpson"},
        {"baseline": "uniform"},
        {"internal_batch_size": 0},
        {"aggregate": "max"},
    ],
)
def test_bad_ig_config_rejected(kwargs):
    with pytest.raises(ValueError):
        G.IntegratedGradientsConfig(**kwargs)


def test_bad_aggregate_rejected():
    with pytest.raises(ValueError, match="aggregate"):
        G.SaliencyConfig(aggregate=typing.cast(G.Aggregate, "l1"))
    with pytest.raises(ValueError, match="aggregate"):
        G.InputXGradientConfig(aggregate=typing.cast(G.Aggregate, "mean"))


def test_methods_table():
    assert [e.name for e in G.METHODS] == ["saliency", "input_x_gradient", "integrated_gradients"]
    for entry in G.METHODS:
        assert entry.fn.__name__ == entry.name
        assert entry.description
    assert G.METHODS[2].default_config == G.IntegratedGradientsConfig()


@pytest.mark.parametrize("baseline", ["zero", "mean"])
@pytest.mark.parametrize("method", ["gausslegendre", "riemann_trapezoid"])
def test_integrated_gradients_equal_the_explicit_path_sum(model, tokens, method, baseline):
    """Captum's IG = (E − E') ⊙ Σ_k w_k ∇f at its (w, α) table, summed here without Captum."""
    cfg = G.IntegratedGradientsConfig(
        n_steps=12, method=method, baseline=baseline, internal_batch_size=5
    )
    adapter, req = request(model, tokens)
    x = embeddings(model, req)[0]
    base = torch.zeros_like(x) if baseline == "zero" else adapter.mean_embedding().expand_as(x)
    steps, alphas = G.quadrature(cfg.n_steps, cfg.method)
    f = captum_forward(adapter, req)
    expected = torch.zeros_like(x)
    for w, a in zip(steps.tolist(), alphas.tolist(), strict=True):
        point = (base + a * (x - base)).requires_grad_(True)
        (g,) = torch.autograd.grad(f(point[None]).sum(), point)
        expected += w * g
    got = G.integrated_gradients_dims(adapter, req, config=cfg)
    torch.testing.assert_close(got, expected * (x - base), **oracle_tolerance(model))
