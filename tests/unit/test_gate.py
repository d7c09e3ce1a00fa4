from typing import Any, cast

import pytest
import torch

import heta_lens as H
from heta_lens.hooks import AttentionCapture
from tests.conftest import model_params
from tests.unit import oracles

MODES = ["rollout", "attention", "full_rollout", "uniform"]


@pytest.mark.parametrize("mode", MODES)
def test_gate_matches_brute_force_path_enumeration(model, tokens, mode):
    target = 6
    gate = H.semantic_gate(model, tokens, target=target, mode=mode)
    pattern, v, w_o = oracles.capture(model, tokens[:target])
    expected = oracles.brute_force_gate(pattern, v, w_o, t=target - 1, mode=mode)
    torch.testing.assert_close(gate, expected, rtol=1e-10, atol=1e-12)


def test_gate_is_a_distribution_over_ctx(model, tokens):
    gate = H.semantic_gate(model, tokens, target=5)
    assert gate.shape == (5,)
    assert bool((gate >= 0).all())
    assert float(gate.sum()) == pytest.approx(1.0, abs=1e-12)


def test_gate_ignores_tokens_after_target(model, tokens):
    changed = tokens.clone()
    changed[6:] = torch.tensor([2])
    torch.testing.assert_close(
        H.semantic_gate(model, tokens, target=5),
        H.semantic_gate(model, changed, target=5),
        rtol=0,
        atol=0,
    )


def _synthetic_capture(n: int = 5) -> AttentionCapture:
    gen = torch.Generator().manual_seed(3)
    scores = torch.rand(2, 3, n, n, generator=gen, dtype=torch.float64)
    scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), 0.0)
    scores[:, :, :, 2] = 0.0  # nobody attends to position 2 ...
    scores[:, :, 2, 2] = 1.0  # ... except position 2 itself
    pattern = scores / scores.sum(-1, keepdim=True)
    v = torch.randn(2, n, 3, 4, generator=gen, dtype=torch.float64)
    w_o = torch.randn(2, 3, 4, 6, generator=gen, dtype=torch.float64)
    return AttentionCapture(pattern=pattern, v=v, W_O=w_o)


@pytest.mark.parametrize("mode", ["rollout", "attention"])
def test_no_causal_path_gives_exactly_zero(mode):
    capture = _synthetic_capture()
    gate = H.gate_from_capture(capture, mode=mode)
    assert float(gate[2]) == 0.0
    expected = oracles.brute_force_gate(capture.pattern, capture.v, capture.W_O, t=4, mode=mode)
    torch.testing.assert_close(gate, expected, rtol=1e-12, atol=0.0)


def test_gate_at_inner_position_matches_brute_force():
    capture = _synthetic_capture()
    gate = H.gate_from_capture(capture, t=3, mode="full_rollout")
    expected = oracles.brute_force_gate(
        capture.pattern[:, :, :4, :4], capture.v[:, :4], capture.W_O, t=3, mode="full_rollout"
    )
    torch.testing.assert_close(gate, expected, rtol=1e-12, atol=1e-15)


def test_unknown_gate_mode_rejected():
    with pytest.raises(ValueError, match="unknown gate mode"):
        H.gate_from_capture(_synthetic_capture(), mode=cast(Any, "sideways"))


@pytest.mark.parametrize("model_id", model_params(["hooked-gqa"]))
def test_gqa_expansion_reproduces_hook_z(model_id):
    from heta_lens.hooks import ModelAdapter
    from tests.conftest import make_model

    model = make_model(model_id)
    ids = torch.tensor([1, 5, 7, 3, 9])
    capture = ModelAdapter(model).capture_attention(ids)
    _, cache = model.run_with_cache(ids[None])
    for layer in range(model.cfg.n_layers):
        z = torch.einsum("hqk,khd->qhd", capture.pattern[layer], capture.v[layer])
        torch.testing.assert_close(
            z, cache[f"blocks.{layer}.attn.hook_z"][0], rtol=1e-12, atol=1e-14
        )


def test_captured_W_O_reproduces_attention_output(model):
    """z·W_O (+ b_O) must equal hook_attn_out: pins W_O's [head, d_head, d_model] layout.

    The bridge reshapes a square o_proj matrix, where a transposed layout would pass every
    shape check; this runs on both transformer-lens majors.
    """
    from heta_lens.hooks import ModelAdapter

    ids = torch.tensor([1, 5, 7, 3, 9])
    capture = ModelAdapter(model).capture_attention(ids)
    _, cache = model.run_with_cache(ids[None])
    for layer in range(model.cfg.n_layers):
        z = cache[f"blocks.{layer}.attn.hook_z"][0]
        out = torch.einsum("phd,hdm->pm", z, capture.W_O[layer])
        try:
            b_o = model.b_O
        except (AttributeError, TypeError):  # TL 3.9 bridge: stacking a bias-free Llama's None
            b_o = None
        if b_o is not None:
            out = out + b_o[layer]
        expected = cache[f"blocks.{layer}.hook_attn_out"][0]
        torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-14)
