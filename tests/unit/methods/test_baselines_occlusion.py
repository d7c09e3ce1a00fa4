from typing import Any, cast

import pytest
import torch
from captum.attr import FeatureAblation

from heta_lens.methods.occlusion import (
    METHODS,
    KlOcclusionConfig,
    OcclusionConfig,
    kl_occlusion,
    occlusion,
)
from tests.conftest import oracle_tolerance
from tests.unit import oracles
from tests.unit.test_model_state import _assert_same, _snapshot

TARGET = 6


def _mask_row(model, x: torch.Tensor, mask: str) -> torch.Tensor:
    """The replacement embedding, built without heta_lens (zero / vocabulary mean / token)."""
    if mask == "zero":
        return torch.zeros_like(x[0])
    if mask == "mean":
        return model.embed(torch.arange(model.cfg.d_vocab)[None])[0].mean(0).detach()
    return oracles.embeddings(model, torch.tensor([int(mask.split(":")[1])]))[0]


def _target_log_prob(model, prefix: torch.Tensor, embeds: torch.Tensor, target_id: int):
    logits = oracles.full_logits_with_embeds(model, prefix[None], embeds)
    return logits[:, -1].log_softmax(-1)[:, target_id]


@pytest.mark.parametrize("mask", ["zero", "mean", "token:17"])
def test_occlusion_equals_captum_feature_ablation(model, tokens, mask):
    prefix, target_id = tokens[:TARGET], int(tokens[TARGET])
    x = oracles.embeddings(model, prefix)
    baseline = _mask_row(model, x, mask).expand_as(x)[None]
    feature_mask = torch.arange(TARGET)[None, :, None].expand(1, TARGET, x.shape[-1])

    def forward(embeds: torch.Tensor) -> torch.Tensor:
        return _target_log_prob(model, prefix, embeds, target_id)

    with torch.no_grad():
        expected = FeatureAblation(forward).attribute(
            x[None], baselines=baseline, feature_mask=feature_mask
        )[0, :, 0]
    got = occlusion(model, tokens, target=TARGET, config=OcclusionConfig(mask=mask, batch_size=4))
    assert got.scores.shape == (TARGET,)
    torch.testing.assert_close(got.scores, expected, **oracle_tolerance(model))


def test_occlusion_equals_one_at_a_time_reruns(model, tokens):
    prefix, target_id = tokens[:TARGET], int(tokens[TARGET])
    x = oracles.embeddings(model, prefix)
    with torch.no_grad():
        reference = float(_target_log_prob(model, prefix, x[None], target_id)[0])
        expected = []
        for i in range(TARGET):
            masked = x.clone()
            masked[i] = 0.0
            expected.append(
                reference - float(_target_log_prob(model, prefix, masked[None], target_id)[0])
            )
    got = occlusion(model, tokens, target=TARGET, config=OcclusionConfig(batch_size=1))
    torch.testing.assert_close(
        got.scores, torch.tensor(expected, dtype=got.scores.dtype), **oracle_tolerance(model)
    )


@pytest.mark.parametrize("mask", ["zero", "token:17"])
def test_kl_occlusion_equals_explicit_reruns_and_kl(model, tokens, mask):
    prefix = tokens[:TARGET]
    x = oracles.embeddings(model, prefix)
    row = _mask_row(model, x, mask)
    with torch.no_grad():
        p = model(prefix[None])[0, -1].softmax(-1)
        expected = []
        for i in range(TARGET):
            masked = x.clone()
            masked[i] = row
            q = oracles.full_logits_with_embeds(model, prefix[None], masked[None])[0, -1].softmax(
                -1
            )
            expected.append(float((p * (p.log() - q.log())).sum()))
    for strategy in ("batched", "prefix"):
        cfg = KlOcclusionConfig(mask=mask, batch_size=4, strategy=strategy)
        got = kl_occlusion(model, tokens, target=TARGET, config=cfg)
        assert got.method == "kl_occlusion"
        torch.testing.assert_close(
            got.scores,
            torch.tensor(expected, dtype=got.scores.dtype),
            rtol=oracle_tolerance(model)["rtol"],
            atol=1e-12,
        )


def test_batch_size_does_not_change_scores(model, tokens):
    a = occlusion(model, tokens, config=OcclusionConfig(batch_size=1)).scores
    b = occlusion(model, tokens, config=OcclusionConfig(batch_size=100)).scores
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("fn", [occlusion, kl_occlusion])
def test_model_state_untouched(model, tokens, fn):
    model(tokens[None])  # a bridge installs its lazy hooks on the first call
    model.train()
    before = _snapshot(model)
    result = fn(model, tokens, target=4)
    assert result.scores.shape == (4,)
    _assert_same(before, _snapshot(model))


def test_entries_and_config_validation():
    assert [e.name for e in METHODS] == ["occlusion", "kl_occlusion"]
    assert METHODS[0].default_config == OcclusionConfig()
    with pytest.raises(ValueError, match="batch_size"):
        OcclusionConfig(batch_size=0)
    with pytest.raises(ValueError, match="strategy"):
        KlOcclusionConfig(strategy=cast(Any, "fast"))


@pytest.mark.parametrize("mask", ["mean", "token:17"])
def test_occlusion_equals_one_at_a_time_reruns_for_every_mask(model, tokens, mask):
    """The other mask schemes against explicit reruns (no Captum in the oracle)."""
    prefix, target_id = tokens[:TARGET], int(tokens[TARGET])
    x = oracles.embeddings(model, prefix)
    row = _mask_row(model, x, mask)
    with torch.no_grad():
        reference = float(_target_log_prob(model, prefix, x[None], target_id)[0])
        expected = []
        for i in range(TARGET):
            masked = x.clone()
            masked[i] = row
            drop = reference - float(_target_log_prob(model, prefix, masked[None], target_id)[0])
            expected.append(drop)
    got = occlusion(model, tokens, target=TARGET, config=OcclusionConfig(mask=mask, batch_size=4))
    torch.testing.assert_close(
        got.scores, torch.tensor(expected, dtype=got.scores.dtype), **oracle_tolerance(model)
    )


def test_model_state_untouched_when_a_captum_forward_raises(model, tokens, monkeypatch):
    """FeatureAblation's first masked batch raises inside a hook: the embedding hook and the
    raising one are gone, and the model is as it was."""
    from heta_lens.hooks import ModelAdapter

    model(tokens[None])
    model.train()
    before = _snapshot(model)
    calls = {"n": 0}
    original = ModelAdapter.last_log_probs

    def flaky(self, ids, embeds=None):
        calls["n"] += 1
        if calls["n"] == 3:  # 1: target log-prob, 2: Captum's unmasked eval, 3: masked batch

            def boom(act, hook):  # noqa: ARG001
                raise RuntimeError("boom")

            with self.model.hooks(fwd_hooks=[("blocks.0.attn.hook_pattern", boom)]):
                return original(self, ids, embeds)
        return original(self, ids, embeds)

    monkeypatch.setattr(ModelAdapter, "last_log_probs", flaky)
    with pytest.raises(RuntimeError, match="boom"):
        occlusion(model, tokens, config=OcclusionConfig(batch_size=2))
    assert calls["n"] == 3
    _assert_same(before, _snapshot(model))
