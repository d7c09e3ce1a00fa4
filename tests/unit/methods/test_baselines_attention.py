import itertools

import pytest
import torch

from heta_lens.hooks import ModelAdapter
from heta_lens.methods import attention as A
from heta_lens.testing import bridge_from_hf, tiny_hooked, tiny_llama_hf
from tests.conftest import oracle_tolerance
from tests.unit import oracles
from tests.unit.test_model_state import _assert_same as assert_untouched
from tests.unit.test_model_state import _snapshot as snapshot

TARGET = 5
CONFIGS = [
    A.AttentionRolloutConfig(),
    A.AttentionRolloutConfig(residual=0.2),
    A.AttentionRolloutConfig(residual=0.0, head_reduction="max"),
    A.AttentionRolloutConfig(residual=0.7, head_reduction="max"),
]


def oracle_pattern(model, ids):
    """[layer, head, q, k] from TransformerLens's own run_with_cache (not the adapter)."""
    return oracles.capture(model, ids)[0]


def brute_force_rollout(pattern, *, t, residual, head_reduction):
    """Σ over every path t = p_L → p_{L-1} → … → p_0 = i of Π_l Â_l[p_{l+1}, p_l]."""
    n_layers, _, n, _ = pattern.shape
    mix = []
    for layer in range(n_layers):
        heads = pattern[layer].mean(0) if head_reduction == "mean" else pattern[layer].max(0).values
        m = residual * torch.eye(n, dtype=pattern.dtype) + (1 - residual) * heads
        mix.append(m / m.sum(-1, keepdim=True))
    scores = torch.zeros(n, dtype=pattern.dtype)
    for path in itertools.product(range(n), repeat=n_layers):  # positions below layers L-1..0
        weight, prev = 1.0, t
        for layer, pos in zip(range(n_layers - 1, -1, -1), path, strict=True):
            weight *= float(mix[layer][prev, pos])
            prev = pos
        scores[path[-1]] += weight
    return scores


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.residual}-{c.head_reduction}")
def test_rollout_matches_brute_force_path_enumeration(model, tokens, cfg):
    result = A.attention_rollout(model, tokens, target=TARGET, config=cfg)
    expected = brute_force_rollout(
        oracle_pattern(model, tokens[:TARGET]),
        t=TARGET - 1,
        residual=cfg.residual,
        head_reduction=cfg.head_reduction,
    )
    torch.testing.assert_close(result.scores, expected, **oracle_tolerance(model))


def one_layer_models():
    return [
        pytest.param(
            lambda: tiny_hooked("attn_only"), id="hooked-attn_only", marks=pytest.mark.hooked
        ),
        pytest.param(
            lambda: bridge_from_hf(tiny_llama_hf(n_layers=1)),
            id="bridge-1layer",
            marks=pytest.mark.bridge,
        ),
    ]


@pytest.mark.parametrize("make", one_layer_models())
@pytest.mark.parametrize("residual", [0.5, 0.3, 1.0])
def test_one_layer_rollout_is_residual_plus_mean_attention_row(tokens, make, residual):
    model = make()
    assert model.cfg.n_layers == 1
    cfg = A.AttentionRolloutConfig(residual=residual)
    got = A.attention_rollout(model, tokens, target=TARGET, config=cfg).scores
    row = oracle_pattern(model, tokens[:TARGET])[0, :, TARGET - 1].mean(0)
    expected = (1 - residual) * row
    expected[TARGET - 1] += residual
    torch.testing.assert_close(got, expected, **oracle_tolerance(model))


def test_rollout_rows_sum_to_one_and_are_nonnegative(model, tokens):
    pattern = ModelAdapter(model).capture_attention(tokens).pattern
    for cfg in CONFIGS:
        rollout = A.rollout_matrix(
            pattern, residual=cfg.residual, head_reduction=cfg.head_reduction
        )
        torch.testing.assert_close(
            rollout.sum(-1), torch.ones(len(tokens), dtype=rollout.dtype), rtol=0, atol=1e-12
        )
        assert bool((rollout >= 0).all())
        assert torch.equal(rollout, rollout.tril()), "causal: no flow from later positions"
    scores = A.attention_rollout(model, tokens).scores
    assert float(scores.sum()) == pytest.approx(1.0, abs=1e-12)


def test_rollout_matrix_equals_explicit_product(model, tokens):
    pattern = ModelAdapter(model).capture_attention(tokens).pattern
    mix = A.rollout_mixing(pattern, residual=0.4)
    expected = torch.linalg.multi_dot(list(mix.flip(0))) if len(mix) > 1 else mix[0]
    got = A.rollout_matrix(pattern, residual=0.4)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "fn", [A.attention_rollout, A.last_layer_attention], ids=lambda f: f.__name__
)
def test_causal_and_one_score_per_context_token(model, tokens, fn):
    changed = tokens.clone()
    changed[TARGET:] = 2
    a, b = fn(model, tokens, target=TARGET), fn(model, changed, target=TARGET)
    assert a.scores.shape == (TARGET,)
    assert torch.equal(a.scores, b.scores)
    assert a.method == fn.__name__
    for target in (1, 3, len(tokens) - 1):
        assert fn(model, tokens, target=target).scores.shape == (target,)


@pytest.mark.parametrize("reduction", ["mean", "max"])
def test_last_layer_attention_equals_run_with_cache_row(model, tokens, reduction):
    """The full sequence is cached (keys ≥ T are masked by causality, so row T−1 over keys < T
    is the prefix's row)."""
    cfg = A.LastLayerAttentionConfig(head_reduction=reduction)
    got = A.last_layer_attention(model, tokens, target=TARGET, config=cfg).scores
    last = oracle_pattern(model, tokens)[-1, :, TARGET - 1]  # [head, key_pos]
    torch.testing.assert_close(last[:, TARGET:], torch.zeros_like(last[:, TARGET:]))
    heads = last[:, :TARGET]
    expected = heads.mean(0) if reduction == "mean" else heads.max(0).values
    torch.testing.assert_close(got, expected, **oracle_tolerance(model))


@pytest.mark.parametrize("grad_enabled", [True, False])
@pytest.mark.parametrize(
    "fn", [A.attention_rollout, A.last_layer_attention], ids=lambda f: f.__name__
)
def test_model_state_untouched(model, tokens, fn, grad_enabled):
    model(tokens[None])  # a bridge installs its lazy hooks on first use
    model.train()
    for i, p in enumerate(model.parameters()):
        p.requires_grad_(i % 2 == 0)
    with torch.set_grad_enabled(grad_enabled):
        before = snapshot(model)
        fn(model, tokens)
        assert_untouched(before, snapshot(model))


@pytest.mark.parametrize(
    "fn", [A.attention_rollout, A.last_layer_attention], ids=lambda f: f.__name__
)
def test_model_state_untouched_when_the_capture_raises(model, tokens, fn, monkeypatch):
    model(tokens[None])
    before = snapshot(model)
    original = ModelAdapter.capture_attention

    def flaky(self, ids):
        def boom(act, hook):  # noqa: ARG001
            raise RuntimeError("boom")

        with self.model.hooks(fwd_hooks=[("blocks.0.hook_resid_pre", boom)]):
            return original(self, ids)

    monkeypatch.setattr(ModelAdapter, "capture_attention", flaky)
    with pytest.raises(RuntimeError, match="boom"):
        fn(model, tokens)
    assert_untouched(before, snapshot(model))


@pytest.mark.parametrize(
    "fn", [A.attention_rollout, A.last_layer_attention], ids=lambda f: f.__name__
)
def test_bad_inputs_rejected_by_prepare(model, tokens, fn):
    with pytest.raises(ValueError, match="target 0 has no context"):
        fn(model, tokens, target=0)
    with pytest.raises(ValueError, match="out of range"):
        fn(model, tokens, target=len(tokens))
    with pytest.raises(ValueError, match="exceeds the model context"):
        fn(model, torch.ones(17, dtype=torch.long))


@pytest.mark.parametrize(
    "make",
    [
        lambda: A.AttentionRolloutConfig(residual=-0.1),
        lambda: A.AttentionRolloutConfig(residual=1.5),
        lambda: A.AttentionRolloutConfig(head_reduction="sum"),
        lambda: A.LastLayerAttentionConfig(head_reduction="min"),
    ],
)
def test_bad_config_rejected(make):
    with pytest.raises(ValueError):
        make()


def test_methods_table():
    assert [e.name for e in A.METHODS] == ["attention_rollout", "last_layer_attention"]
    for entry in A.METHODS:
        assert entry.fn.__name__ == entry.name
        assert entry.description
    assert A.METHODS[0].default_config == A.AttentionRolloutConfig(
        residual=0.5, head_reduction="mean"
    )
