"""Causal tracing (layer × position restoration) against explicit hooked reruns."""

import pytest
import torch

from heta_lens.evals.tracing import causal_trace
from heta_lens.hooks.guard import hook_point_hook_count
from tests.conftest import make_model, model_params

TOKENS = torch.tensor([1, 5, 7, 3, 9, 11, 4])
TARGET = 6


@pytest.mark.parametrize("model_id", model_params(["hooked-gqa", "bridge"]))
def test_restoration_entries_equal_explicit_reruns(model_id):
    model = make_model(model_id)
    trace = causal_trace(
        model, TOKENS, target=TARGET, corrupt=[1, 2, 3], generator=torch.Generator().manual_seed(2)
    )
    n_layers = model.cfg.n_layers
    assert trace.log_p.shape == (n_layers, TARGET)
    prefix = TOKENS[:TARGET][None]
    target_id = int(TOKENS[TARGET])
    # rebuild the noise exactly as documented: N(0, (3σ)²) on the corrupted rows, in order
    w = model.embed(torch.arange(model.cfg.d_vocab)[None])[0].detach().double()
    sigma = 3.0 * float(w.std())
    eps = torch.randn(
        (3, model.cfg.d_model), generator=torch.Generator().manual_seed(2), dtype=torch.float64
    )
    noise = torch.zeros(TARGET, model.cfg.d_model, dtype=torch.float64)
    noise[[1, 2, 3]] = sigma * eps

    def add_noise(act, hook):  # noqa: ARG001
        return act + noise[None].to(act.dtype)

    with torch.no_grad():
        _, cache = model.run_with_cache(prefix)
        for layer, pos in [(0, 2), (n_layers - 1, TARGET - 1), (1, 3), (0, 0)]:
            name = f"blocks.{layer}.hook_resid_pre"

            def restore(act, hook, name=name, pos=pos):  # noqa: ARG001
                act = act.clone()
                act[:, pos] = cache[name][:, pos]
                return act

            with model.hooks(fwd_hooks=[("hook_embed", add_noise), (name, restore)]):
                expected = float(model(prefix)[0, -1].log_softmax(-1)[target_id])
            # TL's patching stores the metric in float32
            assert float(trace.log_p[layer, pos]) == pytest.approx(expected, rel=1e-6, abs=1e-6)
        with model.hooks(fwd_hooks=[("hook_embed", add_noise)]):
            corrupted = float(model(prefix)[0, -1].log_softmax(-1)[target_id])
    assert trace.log_p_corrupted == pytest.approx(corrupted, rel=1e-6)
    # restoring a position that was never corrupted changes nothing
    torch.testing.assert_close(
        trace.log_p[:, 0],
        torch.full((n_layers,), corrupted, dtype=torch.float64),
        rtol=1e-6,
        atol=1e-6,
    )
    r = trace.restoration
    assert float(r[0, 0]) == pytest.approx(0.0, abs=1e-4)
    assert hook_point_hook_count(model) == 0


@pytest.mark.parametrize("model_id", model_params(["hooked-ln", "bridge"]))
def test_equals_transformer_lens_patching_on_the_noised_model(model_id):
    from transformer_lens import patching

    model = make_model(model_id)
    gen_seed = 4
    trace = causal_trace(
        model, TOKENS, target=TARGET, generator=torch.Generator().manual_seed(gen_seed)
    )
    w = model.embed(torch.arange(model.cfg.d_vocab)[None])[0].detach().double()
    eps = torch.randn(
        (TARGET - 1, model.cfg.d_model),
        generator=torch.Generator().manual_seed(gen_seed),
        dtype=torch.float64,
    )
    noise = torch.zeros(TARGET, model.cfg.d_model, dtype=torch.float64)
    noise[1:] = 3.0 * float(w.std()) * eps
    prefix = TOKENS[:TARGET][None]
    target_id = int(TOKENS[TARGET])
    with torch.no_grad():
        _, clean_cache = model.run_with_cache(prefix)
        noised = [("hook_embed", lambda act, hook: act + noise[None].to(act.dtype))]  # noqa: ARG005
        with model.hooks(fwd_hooks=noised):
            expected = patching.get_act_patch_resid_pre(
                model, prefix, clean_cache, lambda logits: logits[0, -1].log_softmax(-1)[target_id]
            )
    # TL stores the metric values in float32
    torch.testing.assert_close(trace.log_p.float(), expected.float(), rtol=2e-6, atol=2e-6)


def test_default_corrupts_all_but_the_first_and_validates():
    model = make_model("bridge")
    trace = causal_trace(model, TOKENS, target=TARGET)
    assert trace.corrupt == tuple(range(1, TARGET))
    with pytest.raises(ValueError, match="outside the context"):
        causal_trace(model, TOKENS, target=TARGET, corrupt=[9])
    with pytest.raises(ValueError, match="single token"):
        causal_trace(model, TOKENS, target=1)
    assert hook_point_hook_count(model) == 0


@pytest.mark.parametrize("model_id", model_params(["hooked-ln", "bridge"]))
def test_no_hook_is_left_when_a_restoration_run_raises(model_id, monkeypatch):
    """A failure inside the per-layer loop (hooks registered) leaves the model as it was."""
    from heta_lens.hooks import ModelAdapter

    model = make_model(model_id)
    calls = {"n": 0}
    original = ModelAdapter.last_log_probs

    def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # clean run, layer 0, then fail in layer 1 with its hooks on
            raise RuntimeError("boom")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ModelAdapter, "last_log_probs", failing)
    grad_mode = torch.is_grad_enabled()
    with pytest.raises(RuntimeError, match="boom"):
        causal_trace(model, TOKENS, target=TARGET)
    assert calls["n"] == 3
    assert hook_point_hook_count(model) == 0
    assert torch.is_grad_enabled() == grad_mode
