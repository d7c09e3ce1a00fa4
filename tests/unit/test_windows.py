import dataclasses
import itertools

import pytest
import torch

import heta_lens as H
import heta_lens.windows as W
from heta_lens.attribute import windowed_attribute
from heta_lens.hooks.guard import hook_point_hook_count
from heta_lens.scoring import gate_term, normalize

LONG = torch.tensor([1, 5, 7, 3, 9, 11, 4, 8, 2, 13, 21])
FIELDS = ("scores", "gate", "gate_term", "curvature", "information")
TERMS = ("curvature_term", "information_term")


def _equal(a: H.HetaResult, b: H.HetaResult) -> bool:
    for name in (*FIELDS, *TERMS):
        x, y = getattr(a, name), getattr(b, name)
        if (x is None) != (y is None) or (x is not None and not torch.equal(x, y)):
            return False
    return a.target_log_prob == b.target_log_prob and a.config == b.config


def test_window_spans_cover_the_context():
    grid = itertools.product([1, 2, 7, 10, 64, 101], [1, 2, 3, 4, 16, 512], [0, 0.25, 0.5, 0.99])
    for ctx, size, overlap in grid:
        spans = W.window_spans(ctx, size, overlap)
        stride = W.window_stride(size, overlap)
        covered = torch.zeros(ctx, dtype=torch.long)
        for start, end in spans:
            assert 0 <= start < end <= ctx
            assert end - start == min(size, ctx)
            covered[start:end] += 1
        assert bool((covered >= 1).all())  # every token in at least one window: union = ctx
        assert spans[0][0] == 0 and spans[-1][1] == ctx
        starts = [s for s, _ in spans]
        assert starts == sorted(set(starts))
        assert all(b - a <= stride for a, b in itertools.pairwise(starts))


def test_window_stride_and_validation():
    assert W.window_stride(512, 0.5) == 256
    assert W.window_stride(100, 0.07) == 93  # no round-off loss in 100 * 0.93
    assert W.window_stride(4, 0.9) == 1
    assert W.window_spans(5, 8, 0.5) == [(0, 5)]
    with pytest.raises(ValueError, match="overlap"):
        W.window_spans(5, 2, 1.0)
    with pytest.raises(ValueError, match="size"):
        W.window_spans(5, 0, 0.5)


@pytest.mark.parametrize("view", ["prefix", "window"])
@pytest.mark.parametrize("size", [10, 11, 64])
def test_one_window_over_the_context_equals_plain_attribute(model, view, size):
    plain = H.attribute(model, LONG, config=H.HetaConfig.flat(n_probes=2, seed=3))
    config = H.HetaConfig.flat(n_probes=2, seed=3, window=size)
    assert _equal(
        windowed_attribute(model, LONG, config=config, view=view),
        dataclasses.replace(plain, config=config),
    )
    assert _equal(
        H.attribute(model, LONG, config=config), dataclasses.replace(plain, config=config)
    )


@pytest.mark.parametrize("view", ["prefix", "window"])
def test_windowed_is_deterministic_and_keeps_the_score_identity(model, view):
    config = H.HetaConfig.flat(
        n_probes=2, seed=1, window=4, window_overlap=0.5, beta=0.3, gamma=0.7
    )
    a = windowed_attribute(model, LONG, config=config, view=view)
    b = windowed_attribute(model, LONG, config=config, view=view)
    assert _equal(a, b)
    assert a.curvature_term is not None and a.information_term is not None
    torch.testing.assert_close(
        a.scores,
        a.gate_term * (0.3 * a.curvature_term + 0.7 * a.information_term),
        rtol=1e-14,
        atol=0,
    )
    assert float(a.scores[0]) == 0.0  # the sink (position 0) is excluded by default
    assert bool((a.scores >= 0).all()) and a.scores.shape == (10,)


def test_attribute_dispatches_to_the_prefix_view(model):
    config = H.HetaConfig.flat(n_probes=2, window=4)
    assert _equal(
        H.attribute(model, LONG, config=config), windowed_attribute(model, LONG, config=config)
    )


def _mean(values, spans, ctx):
    total, count = torch.zeros(ctx, dtype=torch.float64), torch.zeros(ctx, dtype=torch.float64)
    for value, (s, e) in zip(values, spans, strict=True):
        total[s:e] += value
        count[s:e] += 1
    return total / count


@pytest.mark.parametrize("sink", ["exclude", "keep"])
def test_prefix_view_terms_by_hand(model, sink):
    """Per window: gate restricted and renormalised (sink only in the window at 0), S and I
    normalised over the window; terms averaged over the windows containing each token."""
    config = H.HetaConfig.flat(n_probes=2, window=4, window_overlap=0.5, sink=sink)
    plain = H.attribute(model, LONG, config=config.updated(window=None))
    got = windowed_attribute(model, LONG, config=config)
    assert plain.curvature is not None and plain.information is not None
    spans = [(0, 4), (2, 6), (4, 8), (6, 10)]
    assert W.window_spans(10, 4, 0.5) == spans
    gates, curvatures, informations = [], [], []
    for s, e in spans:
        g = plain.gate[s:e] / plain.gate[s:e].sum()
        gates.append(gate_term(g, sink=sink) if s == 0 else g)
        curvatures.append(normalize(plain.curvature[s:e], "sum"))
        informations.append(normalize(plain.information[s:e], "sum"))
    for name, raw in (("gate", plain.gate), ("curvature", plain.curvature)):
        assert torch.equal(getattr(got, name), raw)  # the raw fields are the full-prefix ones
    torch.testing.assert_close(got.gate_term, _mean(gates, spans, 10), rtol=1e-13, atol=0)
    torch.testing.assert_close(got.curvature_term, _mean(curvatures, spans, 10), rtol=1e-13, atol=0)
    torch.testing.assert_close(
        got.information_term, _mean(informations, spans, 10), rtol=1e-13, atol=0
    )


def test_window_view_averages_per_window_attributions(model):
    """Window k is plain HETA (seed + k) on x_0, the window's tokens and the target; x_0's own
    values are dropped and the gate renormalised over the window (window 0 needs no anchor)."""
    config = H.HetaConfig.flat(n_probes=2, seed=4, window=6, window_overlap=0.5)
    got = windowed_attribute(model, LONG, config=config, view="window")
    spans = W.window_spans(10, 6, 0.5)
    assert spans == [(0, 6), (3, 9), (4, 10)]
    raw = {name: [] for name in ("gate", "curvature", "information")}
    terms = {name: [] for name in ("gate_term", *TERMS)}
    for k, (s, e) in enumerate(spans):
        anchor = LONG[:1] if s > 0 else LONG[:0]
        part = H.attribute(
            model,
            torch.cat([anchor, LONG[s:e], LONG[10:11]]),
            config=config.updated(window=None, seed=4 + k),
        )
        assert part.curvature is not None and part.information is not None
        skip = anchor.numel()
        for name in raw:
            raw[name].append(getattr(part, name)[skip:])
        gate = part.gate[skip:]
        terms["gate_term"].append(part.gate_term if s == 0 else gate / gate.sum())
        terms["curvature_term"].append(normalize(part.curvature[skip:], "sum"))
        terms["information_term"].append(normalize(part.information[skip:], "sum"))
    for name, values in (*raw.items(), *terms.items()):
        torch.testing.assert_close(getattr(got, name), _mean(values, spans, 10), rtol=1e-13, atol=0)
    full = H.attribute(model, LONG, config=config.updated(window=None))
    assert got.target_log_prob == full.target_log_prob


@pytest.mark.parametrize("view", ["prefix", "window"])
def test_windowed_scores_ignore_tokens_after_target(model, view):
    config = H.HetaConfig.flat(n_probes=2, window=4)
    changed = LONG.clone()
    changed[9:] = 2
    a = windowed_attribute(model, LONG, target=8, config=config, view=view)
    b = windowed_attribute(model, changed, target=8, config=config, view=view)
    assert torch.equal(a.scores, b.scores)


@pytest.mark.parametrize("name", ["transition_only", "kl_only", "no_gate"])
def test_windowed_ablations_keep_their_missing_terms(model, name):
    config = H.HetaConfig.ablation(name, n_probes=2, window=4)
    r = H.attribute(model, LONG, config=config)
    assert (r.curvature_term is None) == (name in ("transition_only", "kl_only"))
    assert (r.information_term is None) == (name == "transition_only")
    if name == "no_gate":
        assert torch.equal(r.gate_term, torch.ones_like(r.gate_term))


def test_windowed_leaves_the_model_untouched(model):
    model(LONG[None])
    hooks, attributes = hook_point_hook_count(model), set(vars(model))
    flags = [p.requires_grad for p in model.parameters()]
    windowed_attribute(model, LONG, config=H.HetaConfig.flat(n_probes=1, window=4), view="window")
    assert hook_point_hook_count(model) == hooks and set(vars(model)) == attributes
    assert [p.requires_grad for p in model.parameters()] == flags


def test_unknown_view_rejected(model):
    with pytest.raises((ValueError, TypeError)):
        windowed_attribute(model, LONG, view="slices")
