"""The prefix-KV fast path checks itself: a wrong fast path falls back, loudly, to plain reruns."""

import warnings
from contextlib import nullcontext
from importlib import metadata

import pytest
import torch
from packaging.version import Version

import heta_lens as H
from heta_lens.hooks import ModelAdapter, fastpath, model_kind, prefix
from heta_lens.hooks.fastpath import FastPathWarning, forget_verdict, probability_tolerance
from heta_lens.testing import tiny_bridge, tiny_hooked
from tests.conftest import oracle_tolerance
from tests.unit import oracles

TARGET = 6


def _tolerance(model) -> dict[str, float]:
    if model_kind(model) == "bridge":
        return oracle_tolerance(model)
    return {"rtol": 1e-10, "atol": 1e-14}


def _explicit_information(model, tokens) -> torch.Tensor:
    return oracles.explicit_zero_mask_information(model, tokens[:TARGET])


def _fast_path_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, FastPathWarning)]


def _perturb(monkeypatch) -> None:
    """Make every prefix-KV rerun return a wrong (rolled) distribution."""
    honest = prefix.PrefixCache.suffix_log_probs

    def perturbed(self, embeds):
        return honest(self, embeds).roll(1, dims=-1)

    monkeypatch.setattr(prefix.PrefixCache, "suffix_log_probs", perturbed)


def test_perturbed_fast_path_falls_back_to_explicit_reruns(model, tokens, monkeypatch):
    forget_verdict(model)
    _perturb(monkeypatch)
    expected = _explicit_information(model, tokens)
    config = H.HetaConfig(use_curvature=False)  # kl_strategy="prefix", the default
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        info = H.information_gain(model, tokens, target=TARGET)
        heta = H.attribute(model, tokens, target=TARGET, config=config)
    torch.testing.assert_close(info, expected, **_tolerance(model))
    assert heta.information is not None
    torch.testing.assert_close(heta.information, expected, **_tolerance(model))
    messages = _fast_path_warnings(record)
    assert len(messages) == 1, messages
    for name in ("transformers", "transformer-lens", "torch"):
        assert f"{name} {metadata.version(name)}" in messages[0]
    assert "max |Δp|" in messages[0]
    forget_verdict(model)


def test_honest_fast_path_is_trusted_silently(model, tokens):
    forget_verdict(model)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        info = H.information_gain(model, tokens, target=TARGET, strategy="prefix")
    assert _fast_path_warnings(record) == []
    assert fastpath._VERDICTS[model] is True
    torch.testing.assert_close(info, _explicit_information(model, tokens), **_tolerance(model))


@pytest.mark.bridge
def test_cache_the_bridge_does_not_fill_is_caught(tokens, monkeypatch):
    """transformers 5.24's failure: the cache is passed but the attention wrappers never fill it."""
    model = tiny_bridge()
    monkeypatch.setattr(prefix, "bridge_cache_alias", lambda *_: nullcontext())
    monkeypatch.setattr(prefix, "cache_kwarg", lambda _: "cache")
    adapter = ModelAdapter(model)
    with torch.no_grad(), pytest.raises(prefix.PrefixCacheError, match="holds 0 positions"):
        prefix.PrefixCache(adapter, tokens).extend(3)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        info = H.information_gain(model, tokens, target=TARGET)
    messages = _fast_path_warnings(record)
    assert len(messages) == 1 and "PrefixCacheError" in messages[0], messages
    torch.testing.assert_close(info, _explicit_information(model, tokens), **_tolerance(model))


@pytest.mark.bridge
def test_cache_alias_leaves_no_hook_even_on_error():
    model = tiny_bridge()
    wrappers = [m for m in model.modules() if hasattr(m, "_update_kv_cache")]
    assert wrappers, "the bridge's attention wrappers are what the alias targets"
    with pytest.raises(RuntimeError, match="boom"), prefix.bridge_cache_alias(model, "cache"):
        assert all(len(m._forward_pre_hooks) == 1 for m in wrappers)
        raise RuntimeError("boom")
    assert all(len(m._forward_pre_hooks) == 0 for m in wrappers)


@pytest.mark.bridge
def test_cache_kwarg_follows_the_installed_transformers():
    model = tiny_bridge()
    renamed = Version(metadata.version("transformers")) >= Version("5.24")
    expected = "cache" if renamed else "past_key_values"
    assert prefix.cache_kwarg(model.original_model) == expected


def test_no_deprecation_warning_from_prefix_reruns(model, tokens):
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # how transformers announces a rename
        H.information_gain(model, tokens, strategy="prefix", chunk_size=2)


def test_probability_tolerance():
    assert probability_tolerance(torch.float32) == pytest.approx(1e3 * 2**-23)
    assert probability_tolerance(torch.float64) == probability_tolerance(torch.float32)
    assert probability_tolerance(torch.bfloat16) == 0.05
    # A HookedTransformer takes its softmax in its own dtype.
    assert probability_tolerance(torch.float64, "hooked") == pytest.approx(1e3 * 2**-52)
    assert probability_tolerance(torch.float32, "hooked") == probability_tolerance(torch.float32)


@pytest.mark.hooked
def test_small_mismatch_is_caught_on_a_float64_hooked_model(tokens, monkeypatch):
    """A fast path off by 1e-6 in probability is far above float64 round-off (a float32
    tolerance, 1.2e-4, let such a row through: dynamic-NTK rope is off by 6e-5)."""
    model = tiny_hooked("ln")
    honest = prefix.PrefixCache.suffix_log_probs

    def slightly_off(self, embeds):
        p = honest(self, embeds).exp()
        return ((1 - 1e-6) * p + 1e-6 * p.roll(1, dims=-1)).log()

    monkeypatch.setattr(prefix.PrefixCache, "suffix_log_probs", slightly_off)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        info = H.information_gain(model, tokens, target=TARGET, chunk_size=1)
    assert len(_fast_path_warnings(record)) == 1
    torch.testing.assert_close(info, _explicit_information(model, tokens), **_tolerance(model))
