"""HETA on a TransformerBridge over a tiny random HF model of every family (TL 3.9 and 4.3).

Each family of :mod:`tests.unit.zoo_hf` is booted as TransformerLens boots a pre-loaded HF
model and checked with :mod:`tests.unit.arch_checks` against independent oracles: the gate
against brute-force path enumeration (four modes), curvature against the explicit float64
Hessian, information against one plain forward per masked copy (prefix-KV reruns over a cached
prefix, and batched full reruns), for a token and a contrast target. The bridge itself is
checked against the HF model it wraps, and a bridge whose hooked attention is not the attention
it applies is refused with an error naming the architecture.
"""

import warnings

import pytest
import torch
from torch import Tensor, nn
from transformer_lens.model_bridge import TransformerBridge

import heta_lens as H
from heta_lens.hooks import ModelAdapter, fastpath, prefix
from heta_lens.hooks.attention_check import attn_output_tolerance
from heta_lens.hooks.guard import hook_point_hook_count
from heta_lens.targets import Contrast
from tests.unit import arch_checks as checks
from tests.unit import zoo_hf
from tests.unit.zoo_hf import FAMILIES, HF_CLASSES

pytestmark = pytest.mark.bridge

TOKENS = torch.tensor([1, 5, 7, 3, 9, 11, 4])
TARGETS = {"token": 6, "contrast": Contrast(answer=3, foil=8)}
GATE_MODES = ("uniform", "attention", "rollout", "full_rollout")

# Tolerances: a power of ten at least 50x the measured floor (max relative error over both
# targets and both stacks, transformer-lens 3.9 / transformers 5.23 and 4.3 / 5.24, which
# agree to the digit but for gptj's information), never below 1e-9. The gate and the attention
# output are exact to <= 5e-16 in every family and use arch_checks' defaults (1e-10).
# Curvature: gpt2 and gpt_neox run float64 throughout (<= 5e-16); the other bridges round
# through float32 (HF's float32 softmax, RMSNorm, or the bridge's own float32 softmax), where
# the HVP and the explicit Hessian, two exact evaluation orders, differ by float32 round-off (up
# to 1.6e-7, gpt_neo): 1e-5, conftest.oracle_tolerance's bridge value. Information: the reruns
# and the oracle's forwards round alike but for batch shapes.
# family: (curvature rtol, information rtol)   measured: curvature, information (chunk_size 2)
TOLERANCE: dict[str, tuple[float, float]] = {
    "gpt2": (1e-9, 1e-9),  # 4.9e-16, 4.1e-14
    "gpt_neo": (1e-5, 1e-9),  # 1.6e-7, 4.4e-14
    "gptj": (1e-5, 1e-9),  # 6.7e-8, 1.3e-12
    "gpt_neox": (1e-9, 1e-9),  # 3.6e-16, 1.4e-13
    "opt": (1e-5, 1e-9),  # 5.0e-8, 3.9e-12
    "llama": (1e-5, 1e-8),  # 1.3e-7, 2.3e-11
    "mistral": (1e-5, 1e-8),  # 1.0e-7, 4.1e-11
    "qwen2": (1e-5, 1e-9),  # 9.8e-8, 1.7e-14
    "phi3": (1e-5, 1e-9),  # 9.7e-8, 5.2e-12
    "gemma2": (1e-5, 1e-9),  # 1.3e-7, 3.7e-13
    "gemma3": (1e-5, 1e-9),  # 9.2e-8, 3.0e-14
}
# Bridge logits vs the HF model's own (magnitude ~3): <= 2.2e-15 where the bridge runs HF's
# attention or re-implements it in HF's order. For gpt_neox and phi3 the bridge re-implements
# partial-rotary attention in another float64 order, so HF's float32 softmax rounds other
# scores: 1.4e-7 and 6.0e-7 (both stacks). 1e-5 is 16x that; a window or cap the bridge missed
# moves these logits by > 1e-2.
HF_ATOL = {"gpt_neox": 1e-5, "phi3": 1e-5}

_BRIDGES: dict[str, TransformerBridge] = {}


def bridge(family: str) -> TransformerBridge:
    """The family's bridge, booted once per session (HETA leaves a model as it found it)."""
    if family not in _BRIDGES:
        _BRIDGES[family] = zoo_hf.tiny_hf_bridge(family)
    return _BRIDGES[family]


def curvature_tol(family: str) -> dict[str, float]:
    rtol = TOLERANCE[family][0]
    return {"rtol": rtol, "atol": 1e-3 * rtol}


def information_tol(family: str) -> dict[str, float]:
    return {"rtol": TOLERANCE[family][1], "atol": 1e-14}


def test_tables_cover_every_family():
    assert set(TOLERANCE) == set(FAMILIES) == set(HF_CLASSES) == set(zoo_hf.CONFIGS)


@pytest.mark.parametrize("family", FAMILIES)
def test_bridge_reproduces_the_hf_model(family):
    model = bridge(family)
    assert model.cfg.architecture == HF_CLASSES[family]
    twin = zoo_hf.tiny_hf(family)  # same seed, same weights, never wrapped
    with torch.no_grad():
        expected = twin(TOKENS[None]).logits[0]
        got = model(TOKENS[None])[0]
    torch.testing.assert_close(got, expected, rtol=0, atol=HF_ATOL.get(family, 1e-12))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("mode", GATE_MODES)
def test_gate(family, target, mode):
    checks.check_gate(bridge(family), TOKENS, TARGETS[target], mode=mode)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("target", TARGETS)
def test_curvature(family, target):
    checks.check_curvature(bridge(family), TOKENS, TARGETS[target], **curvature_tol(family))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("target", TARGETS)
def test_information_batched(family, target):
    checks.check_information(
        bridge(family), TOKENS, TARGETS[target], strategy="batched", **information_tol(family)
    )


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("target", TARGETS)
def test_information_prefix_fast_path(family, target, monkeypatch):
    """Chunks of 2 masked copies run on top of cached prefixes of 2, 4 (and 6) tokens, longer
    than the sliding windows; the fast path's self-check passes, so it is used, silently."""
    model = bridge(family)
    fastpath.forget_verdict(model)
    prefix_lengths: list[int] = []
    honest = prefix.PrefixCache.suffix_log_probs

    def spy(self: prefix.PrefixCache, embeds: Tensor) -> Tensor:
        prefix_lengths.append(self.length)
        return honest(self, embeds)

    monkeypatch.setattr(prefix.PrefixCache, "suffix_log_probs", spy)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        checks.check_information(
            model,
            TOKENS,
            TARGETS[target],
            strategy="prefix",
            chunk_size=2,
            **information_tol(family),
        )
    assert [w for w in record if issubclass(w.category, fastpath.FastPathWarning)] == []
    assert fastpath._VERDICTS[model] is True
    n = checks.context_of(TOKENS, TARGETS[target]).numel()
    assert set(prefix_lengths) == {*range(0, n, 2), n // 2}  # chunks' prefixes, self-check's


@pytest.mark.parametrize("family", FAMILIES)
def test_attention_output(family):
    checks.check_attention_output(bridge(family), TOKENS)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_attention_check_accepts_lower_precision(family, dtype):
    """The capture's self-check is round-off-tolerant where real models run (measured worst:
    3.4e-7 relative in float32, 5.7e-3 in bfloat16, against 1.2e-4 and 0.05)."""
    model = zoo_hf.tiny_hf_bridge(family, dtype=dtype)
    capture = ModelAdapter(model).capture_attention(TOKENS)
    assert capture.pattern.dtype == dtype


def test_attention_output_tolerance():
    assert attn_output_tolerance(torch.float64) == pytest.approx(1e3 * 2**-52)
    assert attn_output_tolerance(torch.float32) == pytest.approx(1e3 * 2**-23)
    assert attn_output_tolerance(torch.bfloat16) == 0.05


# ------------------------------------------------------------------ the zoo is what it claims
@pytest.mark.parametrize("family", sorted(zoo_hf.SLIDING))
def test_sliding_windows_are_live(family):
    window, sliding = zoo_hf.SLIDING[family]
    _, cache = bridge(family).run_with_cache(TOKENS[None])
    t = TOKENS.numel() - 1
    for layer in range(2):
        row = cache[f"blocks.{layer}.attn.hook_pattern"][0, :, t]
        first = t - window + 1 if layer in sliding else 0
        assert (row[:, :first] == 0).all() and (row[:, first:] > 0).all()


def test_gemma2_soft_caps_bend_scores_and_logits():
    caps = zoo_hf.GEMMA2_CAPS
    logits, cache = bridge("gemma2").run_with_cache(TOKENS[None])
    scores = torch.stack([cache[f"blocks.{i}.attn.hook_attn_scores"] for i in range(2)])
    scores = scores[scores.isfinite() & (scores > torch.finfo(scores.dtype).min)]
    # tanh bends by > 8% past half the cap; both caps are reached that far and never passed
    assert (
        0.5 * caps["attn_logit_softcapping"] < scores.abs().max() < caps["attn_logit_softcapping"]
    )
    assert (
        0.5 * caps["final_logit_softcapping"] < logits.abs().max() < caps["final_logit_softcapping"]
    )


def test_llama3_rope_scaling_is_live():
    inv_freq = zoo_hf.tiny_hf("llama").model.rotary_emb.inv_freq
    default = 10000.0 ** -(torch.arange(0, 8, 2, dtype=torch.float64) / 8)
    kept, changed = inv_freq[:1], inv_freq[1:]
    torch.testing.assert_close(kept, default[:1].to(kept.dtype))
    assert (changed < 0.5 * default[1:].to(changed.dtype)).all()


# ------------------------------------------------------------------ unsupported: refused loudly
class _HookSeesAnotherPattern(nn.Module):
    """Shows the hook point a narrower-window pattern than the one the model goes on with.

    A bridge that re-implements attention applies what this module returns; one that delegates
    to HF (``AttentionBridge``: GPT-Neo, GPT-J, OPT) fires ``hook_pattern`` on the weights HF
    already applied. Either way the hooked pattern is not the applied one, as when an adapter
    masks or caps after the hook.
    """

    def __init__(self, hook_point: nn.Module) -> None:
        super().__init__()
        self.hook_point = hook_point

    def forward(self, pattern: Tensor) -> Tensor:
        pos = torch.arange(pattern.shape[-1])
        narrow = pattern * (pos[:, None] - pos[None, :] < 2).to(pattern.dtype)  # 2-token window
        self.hook_point(narrow / narrow.sum(-1, keepdim=True))
        return pattern


@pytest.mark.parametrize("family", FAMILIES)
def test_pattern_hooked_but_not_applied_is_refused(family):
    model = zoo_hf.tiny_hf_bridge(family)
    attn = model.blocks[1].attn
    attn.hook_pattern = _HookSeesAnotherPattern(attn.hook_pattern)
    hooks = hook_point_hook_count(model)
    message = f"unsupported architecture {HF_CLASSES[family]}: in layer 1 the hooked attention"
    with pytest.raises(ValueError, match=message):
        H.semantic_gate(model, TOKENS, target=6)
    assert hook_point_hook_count(model) == hooks


@pytest.mark.parametrize("family", FAMILIES)
def test_pattern_hook_that_never_fires_is_refused(family):
    model = zoo_hf.tiny_hf_bridge(family)
    model.blocks[0].attn.hook_pattern = nn.Identity()  # hook_dict still lists the old point
    message = (
        rf"unsupported architecture {HF_CLASSES[family]}: hook points "
        r"\['blocks.0.attn.hook_pattern'\] did not fire"
    )
    with pytest.raises(ValueError, match=message):
        H.semantic_gate(model, TOKENS, target=6)


@pytest.mark.parametrize("family", FAMILIES)
def test_W_O_in_another_head_layout_is_refused(family, monkeypatch):
    model = bridge(family)
    honest = TransformerBridge.W_O
    assert isinstance(honest, property) and honest.fget is not None
    read = honest.fget
    monkeypatch.setattr(TransformerBridge, "W_O", property(lambda self: read(self).roll(1, 1)))
    message = f"unsupported architecture {HF_CLASSES[family]}: in layer 0"
    with pytest.raises(ValueError, match=message):
        H.semantic_gate(model, TOKENS, target=6)
