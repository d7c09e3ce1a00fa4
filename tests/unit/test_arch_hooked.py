"""Every HookedTransformer architecture feature of TL 3.9 against the oracles.

One tiny random float64 model per feature or family (:mod:`tests.unit.zoo_hooked`), each
with a token target and a contrast at the last position, through the shared checks of
:mod:`tests.unit.arch_checks`: the gate in its four modes against brute-force path
enumeration, curvature against the explicit Hessian, information by both rerun strategies
against plain reruns, and the attention output the gate reads against the model's own; then
the full :func:`heta_lens.attribute` on a longer prompt, for the properties of causal paths.
"""

import warnings

import pytest
import torch

import heta_lens as H
from heta_lens.hooks import fastpath
from heta_lens.hooks.fastpath import FastPathWarning
from heta_lens.targets import Contrast
from tests.conftest import oracle_tolerance
from tests.unit import arch_checks, zoo_hooked

pytestmark = pytest.mark.hooked

TOKENS = torch.tensor([1, 5, 7, 3, 9, 11, 4])
TARGETS = {"token": 6, "contrast": Contrast(3, 8)}
MODES = ("rollout", "attention", "full_rollout", "uniform")
ENTRIES = list(zoo_hooked.ZOO)

# Entries whose prefix-KV reruns cannot be exact, so the fast path must refuse and warn
# (with this text): bidirectional attention and dynamic NTK by construction (refused up
# front); ungrouped GQA because TL 3.9's KV cache holds n_key_value_heads heads while
# ungrouped attention appends n_heads (the self-check's masked row raises inside TL).
NO_PREFIX_PATH = {
    "bidirectional": "attention_dir='bidirectional'",
    "dynamic_ntk": "use_dynamic_ntk_rope",
    "gqa_ungrouped": "RuntimeError",
}

# Measured floors above float64 round-off. TL 3.9's MoE router takes its softmax in float32
# (`F.softmax(..., dtype=torch.float)`), so second derivatives through the routing weights
# carry float32 round-off, and HETA's HVPs and the explicit Hessian (two evaluation orders)
# differ by up to 2.9e-8 relative (moe; 2.8e-8 gpt_oss_like). With that softmax patched to
# float64 they agree to 4e-16. 1e-7 (below one float32 epsilon) sits 3.5x above the floor.
FLOAT32_ROUTER = {"rtol": 1e-7, "atol": 1e-10}
CURVATURE_FLOOR = {"moe": FLOAT32_ROUTER, "gpt_oss_like": FLOAT32_ROUTER}


def _model(name: str):
    return zoo_hooked.build(name)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", ENTRIES)
def test_gate(name, target, mode):
    arch_checks.check_gate(_model(name), TOKENS, TARGETS[target], mode=mode)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", ENTRIES)
def test_curvature(name, target):
    model = _model(name)
    tol = CURVATURE_FLOOR.get(name, oracle_tolerance(model))
    arch_checks.check_curvature(model, TOKENS, TARGETS[target], vectorize=True, **tol)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", ENTRIES)
def test_information_prefix_path(name, target):
    """chunk_size=1: every masked row after the first runs on a cache of the rows before it."""
    model = _model(name)
    fastpath.forget_verdict(model)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        arch_checks.check_information(
            model,
            TOKENS,
            TARGETS[target],
            strategy="prefix",
            chunk_size=1,
            **oracle_tolerance(model),
        )
    messages = [str(w.message) for w in record if issubclass(w.category, FastPathWarning)]
    if name in NO_PREFIX_PATH:
        assert len(messages) == 1 and NO_PREFIX_PATH[name] in messages[0], messages
        assert fastpath._VERDICTS.get(model) is not True
    else:
        assert messages == []
        assert fastpath._VERDICTS[model] is True  # the numbers above came from the fast path


def test_dynamic_ntk_is_refused_by_context_length_not_once_per_model():
    """Up to train_seq_length the rotary base is fixed and the fast path is exact (and
    trusted); past it the same model must refuse the path, whatever was cached before."""
    model = _model("dynamic_ntk")
    fastpath.forget_verdict(model)
    tol = oracle_tolerance(model)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        arch_checks.check_information(model, TOKENS[:5], 4, chunk_size=1, **tol)  # ctx 4
        assert fastpath._VERDICTS[model] is True and record == []
        arch_checks.check_information(model, TOKENS, 6, chunk_size=1, **tol)  # ctx 6
    messages = [str(w.message) for w in record if issubclass(w.category, FastPathWarning)]
    assert len(messages) == 1 and "train_seq_length=4" in messages[0], messages


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", ENTRIES)
def test_information_batched(name, target):
    model = _model(name)
    arch_checks.check_information(
        model, TOKENS, TARGETS[target], strategy="batched", chunk_size=4, **oracle_tolerance(model)
    )


@pytest.mark.parametrize("name", ENTRIES)
def test_attention_output_is_what_the_gate_reads(name):
    arch_checks.check_attention_output(_model(name), TOKENS)


def _reach(cfg) -> int | None:
    """How many positions back a causal path from a query can reach (None: any distance).

    Only a model whose every layer is local bounds it: each layer moves at most
    window_size − 1 positions back (the residual stream lets a path stay put).
    """
    types = cfg.attn_types if cfg.use_local_attn else None
    if not types or "global" in types:
        return None
    return sum(cfg.window_size - 1 for _ in types)


LONG = torch.tensor([1, 5, 7, 3, 9, 11, 4, 8, 2])
LONG_TARGETS = {"token": 8, "contrast": Contrast(3, 8)}


@pytest.mark.filterwarnings("ignore::heta_lens.hooks.fastpath.FastPathWarning")  # tested above
@pytest.mark.parametrize("target", LONG_TARGETS)
@pytest.mark.parametrize("name", ENTRIES)
def test_attribute_zero_exactly_where_no_causal_path(name, target):
    """The full attribution: its components are the public functions', and a position gets
    gate, curvature and score exactly 0 iff no causal path reaches the target's logits (the
    all-local entries, window 3 over 2 layers: more than 4 positions back), a positive gate
    otherwise. Tokens after a token target change nothing."""
    model, goal = _model(name), LONG_TARGETS[target]
    config = H.HetaConfig(sink="keep", curvature=H.Exact(n_probes=2))
    result = H.attribute(model, LONG, target=goal, config=config)
    assert result.curvature is not None and result.information is not None
    torch.testing.assert_close(result.gate, H.semantic_gate(model, LONG, target=goal))
    torch.testing.assert_close(
        result.curvature,
        H.curvature_sensitivity(model, LONG, target=goal, n_probes=2),
        rtol=1e-12,
        atol=1e-12,
    )
    torch.testing.assert_close(
        result.information, H.information_gain(model, LONG, target=goal), rtol=0, atol=0
    )
    ctx = result.scores.numel()
    reach = _reach(model.cfg)
    cut = 0 if reach is None else max(ctx - 1 - reach, 0)
    if name in ("phi3_like", "mistral_like"):
        assert cut > 0, "the all-local entries must leave some position out of reach"
    assert torch.equal(result.gate[:cut], torch.zeros(cut, dtype=result.gate.dtype))
    assert torch.equal(result.curvature[:cut], torch.zeros(cut, dtype=result.gate.dtype))
    assert torch.equal(result.scores[:cut], torch.zeros(cut, dtype=result.gate.dtype))
    assert bool((result.information[:cut] <= 1e-15).all())
    assert bool((result.gate[cut:] > 0).all())
    assert bool(torch.isfinite(result.scores).all()) and bool((result.scores >= 0).all())
    if isinstance(goal, int):
        changed = torch.cat([LONG, torch.tensor([6, 13])])
        again = H.attribute(model, changed, target=goal, config=config)
        torch.testing.assert_close(again.scores, result.scores, rtol=0, atol=0)
