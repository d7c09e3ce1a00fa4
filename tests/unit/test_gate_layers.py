"""The gate read layer by layer (two streamed forwards) equals the gate of one full capture."""

import pytest
import torch

import heta_lens as H
from heta_lens.gate import objective_gate, objective_gate_by_head
from heta_lens.gate_layers import LayerwiseAttention, layerwise_gate, layerwise_gate_by_head
from heta_lens.hooks import ModelAdapter
from heta_lens.hooks.attention_stream import LayerAttention, stream_attention
from heta_lens.hooks.guard import hook_point_hook_count
from tests.unit import oracles
from tests.unit.test_gate import MODES

# (queries, ctx, layers): a token target, a span's rows (prompt of 5), a metric below layer 1,
# a token target inside a longer run sequence.
QUERY_SETS = [((6,), 7, None), ((3, 4, 5, 6), 4, None), ((5,), 6, 1), ((4,), 5, None)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("queries", "ctx", "layers"), QUERY_SETS)
def test_layerwise_gate_equals_the_capture_gate(model, tokens, mode, queries, ctx, layers):
    ids = tokens
    adapter = ModelAdapter(model)
    capture = adapter.capture_attention(ids)
    source = LayerwiseAttention(adapter, ids)
    options = {"ctx": ctx, "queries": queries, "layers": layers, "mode": mode}
    # float64 models: the same arithmetic on the same patterns; a span's rows are zero-padded
    # to the run length in the streamed path, which only reorders sums: max |Δ| measured
    # 2.8e-17 over every test model, mode and query set (bit-identical for token targets).
    torch.testing.assert_close(
        layerwise_gate(source, **options), objective_gate(capture, **options), rtol=0, atol=1e-15
    )
    torch.testing.assert_close(
        layerwise_gate_by_head(source, **options),
        objective_gate_by_head(capture, **options),
        rtol=0,
        atol=1e-15,
    )


@pytest.mark.parametrize("mode", MODES)
def test_layerwise_gate_of_a_span_matches_path_enumeration(model, tokens, mode):
    prompt, span = tokens[:5], (3, 9, 11)
    run = torch.cat([prompt, torch.tensor(span[:-1])])
    source = LayerwiseAttention(ModelAdapter(model), run)
    got = layerwise_gate(source, ctx=5, queries=(4, 5, 6), mode=mode)
    pattern, v, w_o = oracles.capture(model, run)
    expected = oracles.span_gate(pattern, v, w_o, n=5, k=3, mode=mode)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_attribution_never_captures_every_layer_at_once(model, tokens, monkeypatch):
    expected = H.attribute(model, tokens, config=H.HetaConfig(gate_by_head=True))

    def refuse(*_args: object) -> None:
        raise AssertionError("the gate must not hold every layer's pattern")

    monkeypatch.setattr(ModelAdapter, "capture_attention", refuse)
    got = H.attribute(model, tokens, config=H.HetaConfig(gate_by_head=True))
    assert torch.equal(got.scores, expected.scores)
    assert got.gate_by_head is not None and expected.gate_by_head is not None
    assert torch.equal(got.gate_by_head, expected.gate_by_head)
    assert torch.equal(H.semantic_gate(model, tokens), expected.gate)


def test_stream_visits_each_layer_once_in_order_and_keeps_nothing(model, tokens):
    adapter = ModelAdapter(model)
    capture = adapter.capture_attention(tokens)
    hooks = hook_point_hook_count(model)
    seen: list[int] = []

    def visit(part: LayerAttention) -> None:
        seen.append(part.layer)
        assert torch.equal(part.pattern, capture.pattern[part.layer])
        assert torch.equal(part.v, capture.v[part.layer])
        assert torch.equal(part.W_O, capture.W_O[part.layer])

    stream_attention(adapter, tokens, visit)
    assert seen == list(range(model.cfg.n_layers))
    assert hook_point_hook_count(model) == hooks


def test_stream_removes_its_hooks_when_the_visit_raises(model, tokens):
    hooks = hook_point_hook_count(model)

    def boom(part: LayerAttention) -> None:
        raise RuntimeError(f"boom in layer {part.layer}")

    with pytest.raises(RuntimeError, match="boom in layer 0"):
        stream_attention(ModelAdapter(model), tokens, boom)
    assert hook_point_hook_count(model) == hooks
