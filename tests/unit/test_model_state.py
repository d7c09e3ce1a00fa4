import pytest
import torch

import heta_lens as H
from heta_lens.hooks import ModelAdapter
from heta_lens.hooks.guard import hook_point_hook_count, preserved_model_state


def _all_hooks(model) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
    )


def _snapshot(model):
    return {
        "hooks": _all_hooks(model),
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "training": [m.training for m in model.modules()],
        "dtype": next(model.parameters()).dtype,
        "params": [p.detach().clone() for p in model.parameters()],
        "grad_mode": torch.is_grad_enabled(),
        "rng": torch.get_rng_state(),
    }


def _assert_same(before, after):
    assert after["hooks"] == before["hooks"]
    assert after["requires_grad"] == before["requires_grad"]
    assert after["training"] == before["training"]
    assert after["dtype"] == before["dtype"]
    assert after["grad_mode"] == before["grad_mode"]
    assert torch.equal(after["rng"], before["rng"])
    assert all(torch.equal(a, b) for a, b in zip(after["params"], before["params"], strict=True))


@pytest.mark.parametrize("grad_enabled", [True, False])
def test_model_untouched_after_attribute(model, tokens, grad_enabled):
    model(tokens[None])  # let a bridge install its own lazy hooks before the snapshot
    model.train()
    for i, p in enumerate(model.parameters()):
        p.requires_grad_(i % 2 == 0)
    with torch.set_grad_enabled(grad_enabled):
        before = _snapshot(model)
        H.attribute(model, tokens, config=H.HetaConfig.flat(n_probes=1))
        _assert_same(before, _snapshot(model))


def test_model_untouched_when_a_forward_raises_mid_run(model, tokens, monkeypatch):
    model(tokens[None])
    before = _snapshot(model)
    calls = {"n": 0}
    original = ModelAdapter.last_log_probs

    def flaky(self, ids, embeds=None):
        calls["n"] += 1
        if calls["n"] == 3:  # inside the HVP loop, with the embedding hook registered

            def boom(act, hook):  # noqa: ARG001
                raise RuntimeError("boom")

            with self.model.hooks(fwd_hooks=[("blocks.0.attn.hook_pattern", boom)]):
                return original(self, ids, embeds)
        return original(self, ids, embeds)

    monkeypatch.setattr(ModelAdapter, "last_log_probs", flaky)
    with pytest.raises(RuntimeError, match="boom"):
        H.attribute(model, tokens, config=H.HetaConfig.flat(n_probes=1, hvp_chunk=1))
    assert calls["n"] == 3
    _assert_same(before, _snapshot(model))


def test_guard_reports_a_leaked_hook(model, tokens):
    model(tokens[None])
    with pytest.raises(RuntimeError, match="left 1 hook"), preserved_model_state(model):
        model.hook_dict["hook_embed"].add_hook(lambda act, hook: act)  # noqa: ARG005
    model.hook_dict["hook_embed"].remove_hooks("both", including_permanent=True)
    assert hook_point_hook_count(model) == 0
