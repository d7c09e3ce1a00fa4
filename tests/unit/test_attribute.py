import dataclasses

import pytest
import torch

import heta_lens as H
from heta_lens.scoring import gate_term, normalize


def test_components_equal_the_standalone_functions(model, tokens):
    config = H.HetaConfig.flat(n_probes=3, seed=5)
    result = H.attribute(model, tokens, config=config)
    torch.testing.assert_close(result.gate, H.semantic_gate(model, tokens), rtol=0, atol=0)
    curvature = H.curvature_sensitivity(
        model, tokens, n_probes=3, generator=torch.Generator().manual_seed(5)
    )
    assert result.curvature is not None and result.information is not None
    torch.testing.assert_close(result.curvature, curvature, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        result.information, H.information_gain(model, tokens), rtol=0, atol=0
    )


def test_final_score_identity_default(model, tokens):
    r = H.attribute(model, tokens, config=H.HetaConfig.flat(n_probes=2))
    assert r.curvature is not None and r.information is not None
    s_norm, i_norm = r.curvature / r.curvature.sum(), r.information / r.information.sum()
    g = r.gate.clone()
    g[0] = 0.0
    g = g / g.sum()
    torch.testing.assert_close(r.gate_term, g, rtol=1e-14, atol=0)
    torch.testing.assert_close(r.scores, g * (0.5 * s_norm + 0.5 * i_norm), rtol=1e-14, atol=0)
    assert float(r.scores[0]) == 0.0
    torch.testing.assert_close(
        r.scores, r.gate_term * (0.5 * r.curvature_term + 0.5 * r.information_term)
    )


def test_literal_reading_uses_raw_components(model, tokens):
    r = H.attribute(model, tokens, config=H.HetaConfig.literal(n_probes=2, beta=0.3, gamma=0.7))
    assert r.curvature is not None and r.information is not None
    torch.testing.assert_close(
        r.scores, r.gate * (0.3 * r.curvature + 0.7 * r.information), rtol=1e-14, atol=0
    )


@pytest.mark.parametrize("name", H.ABLATIONS)
def test_ablations_remove_exactly_one_ingredient(model, tokens, name):
    config = H.HetaConfig.ablation(name, n_probes=2)
    r = H.attribute(model, tokens, config=config)
    assert (r.curvature is None) == (name in ("transition_only", "kl_only"))
    assert (r.information is None) == (name in ("transition_only", "hessian_only"))
    if name == "no_gate":
        assert torch.equal(r.gate_term, torch.ones_like(r.gate))
    else:
        expected_gate = H.semantic_gate(model, tokens, mode=config.gate_mode)
        torch.testing.assert_close(
            r.gate_term, gate_term(expected_gate, sink="exclude"), rtol=0, atol=0
        )
    bracket = (
        torch.zeros_like(r.gate)
        if (r.curvature_term is not None or r.information_term is not None)
        else torch.ones_like(r.gate)
    )
    if r.curvature_term is not None:
        bracket = bracket + 0.5 * r.curvature_term
    if r.information_term is not None:
        bracket = bracket + 0.5 * r.information_term
    torch.testing.assert_close(r.scores, r.gate_term * bracket, rtol=1e-14, atol=0)


def test_unknown_ablation_lists_valid_names():
    with pytest.raises(ValueError, match="transition_only"):
        H.HetaConfig.ablation("everything")


def test_zero_gate_gives_zero_score():
    gate = torch.tensor([0.0, 0.5, 0.0, 0.5], dtype=torch.float64)
    s = torch.tensor([3.0, 1.0, 2.0, 4.0], dtype=torch.float64)
    from heta_lens.scoring import combine

    scores = combine(gate, normalize(s, "sum"), normalize(s, "max"), beta=0.5, gamma=0.5)
    assert float(scores[0]) == 0.0 and float(scores[2]) == 0.0
    assert torch.equal(normalize(torch.zeros(3), "sum"), torch.zeros(3))


def test_scores_ignore_tokens_after_target(model, tokens):
    changed = tokens.clone()
    changed[6:] = 2
    a = H.attribute(model, tokens, target=5, config=H.HetaConfig.flat(n_probes=2))
    b = H.attribute(model, changed, target=5, config=H.HetaConfig.flat(n_probes=2))
    assert torch.equal(a.scores, b.scores)


def test_result_helpers_and_roundtrip(model, tokens, tmp_path):
    r = H.attribute(model, tokens, target=5, config=H.HetaConfig.flat(n_probes=2))
    top = r.top(2)
    assert [p for p, _, _ in top] == torch.topk(r.scores, 2).indices.tolist()
    assert len(r.str_tokens()) == 5 and r.target_token == int(tokens[5])
    path = tmp_path / "r.json"
    r.save(path)
    back = H.HetaResult.load(path)
    assert isinstance(back, H.HetaResult) and back.config == r.config
    torch.testing.assert_close(back.scores, r.scores)
    assert back.tokens.tolist() == tokens.tolist()
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(r, "target", 3)  # noqa: B010 - frozen dataclass must refuse


def test_result_validates_shapes(tokens):
    with pytest.raises(ValueError, match="scores must have shape"):
        H.AttributionResult(tokens=tokens, target=3, scores=torch.zeros(4), method="x")
    with pytest.raises(ValueError, match="target"):
        H.AttributionResult(tokens=tokens, target=0, scores=torch.zeros(0), method="x")


@pytest.mark.bridge
def test_string_input_on_bridge():
    from heta_lens.testing import tiny_bridge

    bridge = tiny_bridge()
    r = H.attribute(bridge, "w5 w7 w3 w9", config=H.HetaConfig.flat(n_probes=1))
    assert r.str_tokens() == ["w1", "w5", "w7", "w3"]  # bridge prepends BOS w1
    assert bool(torch.isfinite(r.scores).all())
