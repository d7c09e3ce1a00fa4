"""The gate split by attention head, against path enumeration restricted to each head."""

import json

import pytest
import torch

import heta_lens as H
from heta_lens.gate import gate_by_head_from_capture, semantic_gate_by_head
from heta_lens.result import from_dict
from tests.unit import oracles
from tests.unit.test_gate import MODES, _synthetic_capture
from tests.unit.test_targets import _metrics

GATE_ONLY = H.HetaConfig(gate_by_head=True, use_curvature=False, use_information=False)


@pytest.mark.parametrize("mode", MODES)
def test_each_head_matches_its_enumerated_paths(model, tokens, mode):
    target = 6
    got = semantic_gate_by_head(model, tokens, target=target, mode=mode)
    pattern, v, w_o = oracles.capture(model, tokens[:target])
    expected = oracles.brute_force_gate_by_head(pattern, v, w_o, t=target - 1, mode=mode)
    assert got.shape == (model.cfg.n_layers, model.cfg.n_heads, target)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    gate = H.semantic_gate(model, tokens, target=target, mode=mode)
    torch.testing.assert_close(got.sum(dim=(0, 1)), gate, rtol=0, atol=1e-10)


@pytest.mark.parametrize("mode", MODES)
def test_attribute_keeps_the_split_of_its_own_gate(model, tokens, mode):
    config = GATE_ONLY.updated(gate_mode=mode)
    result = H.attribute(model, tokens, target=5, config=config)
    assert result.gate_by_head is not None and result.gate_by_layer is not None
    torch.testing.assert_close(result.gate_by_head.sum(dim=(0, 1)), result.gate, rtol=0, atol=1e-10)
    torch.testing.assert_close(result.gate_by_layer, result.gate_by_head.sum(dim=1), rtol=0, atol=0)
    torch.testing.assert_close(
        result.gate_by_head,
        semantic_gate_by_head(model, tokens, target=5, mode=mode),
        rtol=0,
        atol=0,
    )
    plain = H.attribute(model, tokens, target=5, config=config.updated(gate_by_head=False))
    assert plain.gate_by_head is None
    assert torch.equal(plain.scores, result.scores) and torch.equal(plain.gate, result.gate)


def test_no_causal_path_gives_zero_in_every_head():
    capture = _synthetic_capture()
    for mode in ("rollout", "attention"):
        by_head = gate_by_head_from_capture(capture, mode=mode)
        assert bool((by_head[:, :, 2] == 0).all())
        expected = oracles.brute_force_gate_by_head(
            capture.pattern, capture.v, capture.W_O, t=4, mode=mode
        )
        torch.testing.assert_close(by_head, expected, rtol=1e-12, atol=0.0)


@pytest.mark.parametrize("mode", MODES)
def test_contrast_and_span_split_by_head(model, tokens, mode):
    got = semantic_gate_by_head(model, tokens, target=H.Contrast(5, 8, position=4), mode=mode)
    pattern, v, w_o = oracles.capture(model, tokens[:5])
    expected = oracles.brute_force_gate_by_head(pattern, v, w_o, t=4, mode=mode)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)

    prompt, span = tokens[:5], (3, 9, 11)
    got = semantic_gate_by_head(model, prompt, target=H.Span(span), mode=mode)
    pattern, v, w_o = oracles.capture(model, torch.cat([prompt, torch.tensor(span[:-1])]))
    expected = oracles.span_gate_by_head(pattern, v, w_o, n=5, k=3, mode=mode)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    gate = H.semantic_gate(model, prompt, target=H.Span(span), mode=mode)
    torch.testing.assert_close(got.sum(dim=(0, 1)), gate, rtol=0, atol=1e-10)


@pytest.mark.parametrize("which", ["direction", "head_norm", "sae_latent"])
def test_metric_heads_below_the_hook_only(model, tokens, which):
    hook, fn = _metrics(model)[which]
    target = H.Metric(hook, fn, position=5)
    n_layers = model.cfg.n_layers
    below = {"direction": n_layers, "head_norm": 1, "sae_latent": n_layers - 1}[which]
    if below == 0:  # the one-layer model's last resid_pre: no attention before the hook
        with pytest.raises(ValueError, match="no head carries it"):
            H.attribute(model, tokens, target=target, config=GATE_ONLY)
        return
    result = H.attribute(model, tokens, target=target, config=GATE_ONLY)
    by_head = result.gate_by_head
    assert by_head is not None and by_head.shape[0] == n_layers
    pattern, v, w_o = oracles.capture(model, tokens[:6])
    expected = oracles.brute_force_gate_by_head(
        pattern[:below], v[:below], w_o[:below], t=5, mode="rollout"
    )
    torch.testing.assert_close(by_head[:below], expected, rtol=1e-10, atol=1e-12)
    assert bool((by_head[below:] == 0).all())
    torch.testing.assert_close(by_head.sum(dim=(0, 1)), result.gate, rtol=0, atol=1e-10)


def test_top_heads_rank_the_tokens_column(model, tokens):
    result = H.attribute(model, tokens, target=5, config=GATE_ONLY)
    assert result.gate_by_head is not None
    ranked = result.top_heads(2, k=100)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    assert len(ranked) == n_layers * n_heads
    masses = [mass for _, _, mass in ranked]
    assert masses == sorted(masses, reverse=True)
    for layer, head, mass in ranked:
        assert mass == float(result.gate_by_head[layer, head, 2])
    assert sum(masses) == pytest.approx(float(result.gate[2]), rel=1e-12)
    with pytest.raises(ValueError, match="outside the context"):
        result.top_heads(5)
    with pytest.raises(ValueError, match="gate_by_head=True"):
        H.attribute(
            model, tokens, target=5, config=GATE_ONLY.updated(gate_by_head=False)
        ).top_heads(1)


def test_json_round_trip_and_older_json(tmp_path):
    from heta_lens.testing import tiny_bridge

    result = H.attribute(tiny_bridge(), torch.tensor([1, 5, 7, 3, 9]), config=GATE_ONLY)
    path = tmp_path / "r.json"
    result.save(path)
    loaded = H.AttributionResult.load(path)
    assert isinstance(loaded, H.HetaResult) and loaded.gate_by_head is not None
    assert torch.equal(loaded.gate_by_head, result.gate_by_head)
    assert loaded.config == result.config
    old = json.loads(path.read_text())
    for key in ("gate_by_head", "interactions"):
        del old[key]
    del old["config"]["gate_by_head"]
    older = from_dict(old)
    assert isinstance(older, H.HetaResult) and older.gate_by_head is None
    assert older.interactions is None and not older.config.gate_by_head


def test_shapes_are_validated():
    from heta_lens.testing import tiny_bridge

    result = H.attribute(tiny_bridge(), torch.tensor([1, 5, 7, 3, 9]), config=GATE_ONLY)
    from dataclasses import replace

    with pytest.raises(ValueError, match="gate_by_head must have shape"):
        replace(result, gate_by_head=torch.zeros(2, 4, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="interactions must have shape"):
        replace(result, interactions=torch.zeros(4, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="need the curvature"):
        replace(result, interactions=torch.zeros(4, 4, dtype=torch.float64))


def test_windows_keep_the_full_prefix_split_or_refuse(model, tokens):
    config = GATE_ONLY.updated(window=3)
    windowed = H.attribute(model, tokens, target=6, config=config)
    plain = H.attribute(model, tokens, target=6, config=GATE_ONLY)
    assert windowed.gate_by_head is not None and plain.gate_by_head is not None
    assert torch.equal(windowed.gate_by_head, plain.gate_by_head)
    with pytest.raises(ValueError, match="'prefix' view"):
        H.windowed_attribute(model, tokens, target=6, config=config, view="window")
