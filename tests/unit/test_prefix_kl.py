import pytest
import torch

import heta_lens as H
from heta_lens.hooks import ModelAdapter, model_kind
from heta_lens.hooks.guard import hook_point_hook_count
from heta_lens.hooks.prefix import PrefixCache
from heta_lens.information import compute_information
from heta_lens.inputs import prepare
from tests.conftest import oracle_tolerance
from tests.unit import oracles

LONG = torch.tensor([1, 5, 7, 3, 9, 11, 4, 8, 2, 13, 21])


def _tolerance(model) -> dict[str, float]:
    """float64 HookedTransformer: 1e-10 relative; the bridge carries HF's float32 internals."""
    if model_kind(model) == "bridge":
        return oracle_tolerance(model)
    return {"rtol": 1e-10, "atol": 1e-14}


@pytest.mark.parametrize("mask", ["zero", "mean", "token:17"])
@pytest.mark.parametrize("chunk_size", [1, 3, 100])
def test_prefix_strategy_equals_batched(model, mask, chunk_size):
    batched = H.information_gain(model, LONG, mask=mask, chunk_size=chunk_size, strategy="batched")
    prefix = H.information_gain(model, LONG, mask=mask, chunk_size=chunk_size, strategy="prefix")
    torch.testing.assert_close(prefix, batched, **_tolerance(model))


def test_prefix_strategy_matches_explicit_reruns(model, tokens):
    target = 6
    expected = oracles.explicit_zero_mask_information(model, tokens[:target])
    got = H.information_gain(model, tokens, target=target, chunk_size=2, strategy="prefix")
    torch.testing.assert_close(got, expected.to(got.dtype), **_tolerance(model))


def test_prefix_identity_mask_is_exactly_zero(model):
    identity = H.information_gain(model, LONG, mask=lambda emb, i: emb[i], strategy="prefix")
    assert torch.equal(identity, torch.zeros_like(identity))


def test_prefix_skips_unchanged_rows_between_changed_ones(model):
    def odd_only(emb, i):
        return torch.zeros_like(emb[i]) if i % 2 else emb[i]

    got = H.information_gain(model, LONG, mask=odd_only, chunk_size=2, strategy="prefix")
    full = H.information_gain(model, LONG, mask="zero", chunk_size=2, strategy="batched")
    assert torch.equal(got[0::2], torch.zeros_like(got[0::2]))
    torch.testing.assert_close(got[1::2], full[1::2], **_tolerance(model))


def test_prefix_cache_suffix_equals_full_forward(model):
    """Positions (learned or rotary) are offset by the cached length; the cache is not grown by
    suffix runs."""
    adapter = ModelAdapter(model)
    ids = LONG[:9]
    with torch.no_grad():
        x = adapter.embed(ids[None])[0]
        full = adapter.last_log_probs(ids[None])[0]
        cache = PrefixCache(adapter, ids)
        for start in (0, 1, 4, 8):
            cache.extend(start)
            suffix = x[start:].expand(3, -1, -1)
            first = cache.suffix_log_probs(suffix)
            again = cache.suffix_log_probs(suffix)
            assert cache.length == start
            assert torch.equal(first, again)
            torch.testing.assert_close(first, full.expand(3, -1), **_tolerance(model))


def test_prefix_cache_rejects_bad_lengths(model):
    cache = PrefixCache(ModelAdapter(model), LONG[:5])
    with torch.no_grad():
        cache.extend(3)
        with pytest.raises(ValueError, match="cannot extend"):
            cache.extend(2)
        with pytest.raises(ValueError, match="cannot extend"):
            cache.extend(6)
        with pytest.raises(ValueError, match="suffix has 2"):
            cache.suffix_log_probs(torch.zeros(1, 3, model.cfg.d_model, dtype=torch.float64))


def test_prefix_strategy_leaves_no_state_on_the_model(model):
    model(LONG[None])  # a bridge installs its own lazy hooks on the first forward
    attributes = set(vars(model))
    hooks = hook_point_hook_count(model)
    H.information_gain(model, LONG, strategy="prefix", chunk_size=3)
    assert set(vars(model)) == attributes
    assert hook_point_hook_count(model) == hooks


def test_config_kl_strategy_reaches_attribute(model, tokens):
    config = H.HetaConfig.flat(use_curvature=False, kl_strategy="batched")
    batched = H.attribute(model, tokens, config=config)
    prefix = H.attribute(model, tokens, config=H.HetaConfig(use_curvature=False))
    assert H.HetaConfig().information.strategy == "prefix"
    assert batched.information is not None and prefix.information is not None
    torch.testing.assert_close(prefix.information, batched.information, **_tolerance(model))


def test_unknown_strategy_and_chunk_rejected(model, tokens):
    with pytest.raises(ValueError, match="KL strategy 'cached'"):
        H.HetaConfig.flat(kl_strategy="cached")
    adapter = ModelAdapter(model)
    req = prepare(adapter, tokens, None)
    with pytest.raises(ValueError, match="KL strategy"):
        compute_information(adapter, req, mask="zero", strategy="cached")
    with pytest.raises(ValueError, match="chunk_size"):
        compute_information(adapter, req, mask="zero", chunk_size=0)


@pytest.mark.bridge
def test_prefix_strategy_with_sliding_window_layers():
    """Gemma 3 mixes sliding-window and full attention layers (a hybrid HF cache); the context
    here is longer than the window."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from heta_lens.testing import bridge_from_hf

    config = Gemma3TextConfig(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=8,
        sliding_window=4,
        layer_types=["sliding_attention", "full_attention"],
        max_position_embeddings=32,
        attn_implementation="eager",
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        hf = Gemma3ForCausalLM(config).to(torch.float64).eval()
    hf.config.architectures = ["Gemma3ForCausalLM"]
    bridge = bridge_from_hf(hf)
    ids = torch.tensor([1, 5, 7, 3, 9, 11, 4, 8, 2, 13, 21, 6, 30, 17])
    for chunk_size in (1, 3):
        batched = H.information_gain(bridge, ids, chunk_size=chunk_size, strategy="batched")
        prefix = H.information_gain(bridge, ids, chunk_size=chunk_size, strategy="prefix")
        torch.testing.assert_close(prefix, batched, **oracle_tolerance(bridge))
