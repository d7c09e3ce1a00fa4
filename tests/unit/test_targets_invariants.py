"""Invariants linking the target kinds, bad targets, and what the result records."""

import math

import pytest
import torch

import heta_lens as H
from heta_lens.config import Exact, LayerSampled, LowRank, RowBlock
from heta_lens.targets import Contrast, Metric, Span, Token
from tests.unit.test_model_state import _assert_same, _snapshot

CONFIG = H.HetaConfig.flat(n_probes=2, seed=3)
ESTIMATORS = [
    Exact(n_probes=2),
    RowBlock(n_probes=2),
    LowRank(rank=3, n_probes=2),
    LayerSampled(k=1, n_probes=2),
]


def _log_prob_metric(model, token: int):
    """f = log_softmax(unembed(ln_final(resid_post of the last block)))[token], written out."""

    def fn(a: torch.Tensor) -> torch.Tensor:
        x = a[None, None]
        if getattr(model.cfg, "normalization_type", "RMS") is not None:
            x = model.ln_final(x)
        return model.unembed(x)[0, 0].log_softmax(-1)[token]

    return f"blocks.{model.cfg.n_layers - 1}.hook_resid_post", fn


@pytest.mark.parametrize("curvature", ESTIMATORS, ids=lambda c: type(c).__name__)
def test_contrast_of_a_token_with_itself_is_exactly_zero(model, tokens, curvature):
    config = H.HetaConfig(curvature=curvature)
    r = H.attribute(model, tokens, target=Contrast(5, 5, position=4), config=config)
    assert r.curvature is not None and r.information is not None
    for values in (r.curvature, r.information, r.scores):
        assert torch.equal(values, torch.zeros_like(values))
    assert r.target_value == 0.0 and r.target_kind == "contrast" and r.target == 5


def test_one_token_span_equals_token(model, tokens):
    span = H.attribute(model, tokens[:6], target=Span((int(tokens[6]),)), config=CONFIG)
    token = H.attribute(model, tokens, target=6, config=CONFIG)
    assert span.target == token.target and torch.equal(span.tokens, token.tokens)
    for name in ("scores", "gate", "curvature", "information"):
        torch.testing.assert_close(
            getattr(span, name), getattr(token, name), rtol=1e-12, atol=1e-14
        )
    assert span.target_value == pytest.approx(token.target_log_prob, rel=1e-12)


@pytest.mark.parametrize("curvature", ESTIMATORS, ids=lambda c: type(c).__name__)
def test_log_prob_metric_at_the_last_position_equals_token(model, tokens, curvature):
    hook, fn = _log_prob_metric(model, int(tokens[6]))
    config = H.HetaConfig(curvature=curvature, seed=4)
    metric = H.attribute(model, tokens, target=Metric(hook, fn, position=5), config=config)
    token = H.attribute(model, tokens, target=Token(6), config=config)
    tol = {"rtol": 1e-7, "atol": 1e-10}  # unembedding by hand vs inside the forward: round-off
    torch.testing.assert_close(metric.curvature, token.curvature, **tol)
    torch.testing.assert_close(metric.gate, token.gate, rtol=0, atol=0)
    assert metric.target_value == pytest.approx(token.target_log_prob, rel=1e-9)
    # information is |Δ log P(token)| for the metric (no distribution): |occlusion|
    occlusion = H.get_method("occlusion")(model, tokens, target=6).scores
    torch.testing.assert_close(metric.information, occlusion.abs(), **tol)


@pytest.mark.parametrize("hook", ["blocks.0.hook_resid_pre", "blocks.0.attn.hook_q", "hook_embed"])
def test_positions_that_cannot_reach_the_metric_score_exactly_zero(model, tokens, hook):
    target = Metric(hook, lambda a: (a**2).sum(), position=4)
    r = H.attribute(model, tokens, target=target, config=H.HetaConfig.flat(n_probes=2, sink="keep"))
    assert r.curvature is not None and r.information is not None
    for values in (r.gate, r.curvature, r.information, r.scores):
        assert torch.equal(values[:4], torch.zeros(4, dtype=values.dtype))
    assert float(r.scores[4]) > 0.0


def test_family_and_baselines_take_targets(model, tokens):
    from heta_lens.family import heta_family

    target = Contrast(5, 8, position=4)
    configs = {"heta": CONFIG, "heta_kl_only": H.HetaConfig.ablation("kl_only")}
    family = heta_family(model, tokens, target=target, configs=configs)
    torch.testing.assert_close(
        family["heta"].scores,
        H.attribute(model, tokens, target=target, config=CONFIG).scores,
        rtol=0,
        atol=0,
    )
    for name in (
        "saliency",
        "input_x_gradient",
        "integrated_gradients",
        "occlusion",
        "kl_occlusion",
    ):
        r = H.get_method(name)(model, tokens, target=target)
        assert (
            r.target_kind == "contrast" and r.scores.shape == (5,) and math.isnan(r.target_log_prob)
        )
    for name in ("attention_rollout", "last_layer_attention", "reagent"):
        with pytest.raises(ValueError, match=f"{name} does not support contrast targets"):
            H.get_method(name)(model, tokens, target=target)
    with pytest.raises(ValueError, match="kl_occlusion does not support metric targets"):
        H.get_method("kl_occlusion")(
            model, tokens, target=Metric("hook_embed", lambda a: a.sum(), position=2)
        )


def test_result_records_the_target_and_round_trips(model, tokens, tmp_path):
    r = H.attribute(model, tokens, target=Contrast(5, 8), config=CONFIG)
    assert r.target == tokens.numel() and r.target_token == -1 and r.scores.shape == (7,)
    assert "logit(" in r.target_description and math.isfinite(r.target_value)
    path = tmp_path / "r.json"
    r.save(path)
    back = H.HetaResult.load(path)
    assert back.target_kind == "contrast" and back.target_value == r.target_value
    assert back.target_description == r.target_description


def test_old_result_files_read_as_token_targets(tokens):
    old = {
        "class": "AttributionResult",
        "tokens": tokens.tolist(),
        "target": 3,
        "scores": [0.1, 0.2, 0.3],
        "method": "x",
        "target_log_prob": -1.5,
    }
    back = H.result.from_dict(old)
    assert back.target_kind == "token" and back.target_value == -1.5


# ------------------------------------------------------------------------------ bad input
@pytest.mark.bridge
@pytest.mark.parametrize(
    ("target", "error", "match"),
    [
        (Contrast(" w5", ""), ValueError, "foil '' tokenizes to 0 tokens"),
        (
            Contrast(" w5", " w7 w9"),
            ValueError,
            r"foil ' w7 w9' tokenizes to 2 tokens \['w7', 'w9'\]",
        ),
        (Contrast(" w5", " w7", position=4), ValueError, "position 4 is out of range for 4 tokens"),
        (Span("w3"), ValueError, "merges across the boundary"),
        (
            Metric("blocks.9.hook_resid_post", lambda a: a.sum(), position=1),
            ValueError,
            "does not exist",
        ),
        (
            Metric("blocks.0.hook_resid_post", lambda a: a.sum(), position=-5),
            ValueError,
            "out of range",
        ),
        (
            Metric("blocks.0.hook_resid_post", lambda a: a * 2, position=1),
            TypeError,
            r"0-d floating tensor.*shape \(32,\)",
        ),
    ],
)
def test_bad_targets_raise_and_leave_the_model_untouched(target, error, match):
    from heta_lens.testing import tiny_bridge

    model = tiny_bridge()
    model(torch.tensor([[1, 5, 7]]))
    before = _snapshot(model)
    with pytest.raises(error, match=match):
        H.attribute(model, "w5 w7 w3", target=target, config=H.HetaConfig.flat(n_probes=1))
    _assert_same(before, _snapshot(model))


def test_text_span_needs_a_text_prompt_and_ls_must_reach_the_metric(model, tokens):
    with pytest.raises(ValueError, match="needs the prompt as text"):
        H.attribute(model, tokens, target=Span(" w3"))
    metric = Metric("blocks.0.hook_resid_pre", lambda a: a.sum(), position=3)
    if model.cfg.n_layers > 1:
        with pytest.raises(ValueError, match="comes before"):
            H.attribute(
                model, tokens, target=metric, config=H.HetaConfig(curvature=LayerSampled(k=1))
            )


def test_windows_take_targets_in_the_prefix_view(model, tokens):
    from heta_lens.config import Window

    target = Span((3, 9))
    whole = H.HetaConfig(curvature=Exact(n_probes=1), window=Window(size=16, overlap=0.5))
    plain = H.attribute(
        model, tokens, target=target, config=H.HetaConfig(curvature=Exact(n_probes=1))
    )
    one_window = H.windowed_attribute(model, tokens, target=target, config=whole)
    torch.testing.assert_close(one_window.scores, plain.scores, rtol=1e-12, atol=1e-14)
    small = H.HetaConfig(curvature=Exact(n_probes=1), window=Window(size=4, overlap=0.5))
    r = H.attribute(model, tokens, target=target, config=small)
    assert r.target_kind == "span" and r.scores.shape == (7,)
    with pytest.raises(ValueError, match="needs the 'prefix' view"):
        H.windowed_attribute(model, tokens, target=target, config=small, view="window")


@pytest.mark.parametrize(
    "hook",
    ["hook_embed", "blocks.0.attn.hook_q", "blocks.0.attn.hook_v", "blocks.0.hook_attn_out"],
)
def test_reaching_matches_explicit_reruns(model, tokens, hook):
    """objective.reaching against changed-token reruns read from TL's own cache: a position
    is reached iff changing its token changes the hook's activation at the readout position."""
    from heta_lens.hooks import ModelAdapter
    from heta_lens.objective import reaching
    from heta_lens.targets import prepare_target

    position = 4
    goal = prepare_target(
        ModelAdapter(model), tokens, Metric(hook, lambda a: a.sum(), position=position)
    ).goal
    reach = reaching(goal, position + 1)

    def act(ids: torch.Tensor) -> torch.Tensor:
        _, cache = model.run_with_cache(ids[None], names_filter=lambda n: n == hook)
        return cache[hook][0, position]

    clean = act(tokens)
    for i in range(position + 1):
        changed = tokens.clone()
        changed[i] = (int(tokens[i]) + 1) % model.cfg.d_vocab
        moved = bool((act(changed) - clean).abs().max() > 1e-12)
        assert moved == bool(reach[i]), (i, moved)
