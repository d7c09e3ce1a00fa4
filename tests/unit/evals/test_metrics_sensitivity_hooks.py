"""Sensitivity's embedding noise goes through the adapter, is part of the token's embedding
(a replaced ``hook_embed`` replaces it), and never outlives its block."""

import pytest
import torch

import heta_lens as H
from heta_lens.config import Information
from heta_lens.evals.metrics.sensitivity import embedding_noise
from heta_lens.hooks import ModelAdapter
from heta_lens.testing import tiny_bridge


def _hook_counts(model) -> tuple[int, ...]:
    modules = [model.embed, getattr(model.embed, "original_component", None)]
    return tuple(len(m._forward_hooks) for m in modules if m is not None)


@pytest.mark.parametrize("replaceable", [True, False])
def test_embedding_noise_adds_to_matching_ids_and_leaves_no_hook_even_on_error(model, replaceable):
    adapter = ModelAdapter(model)
    ids = torch.tensor([[1, 5, 7, 5]])
    before = adapter.embed(ids)[0]
    noise = torch.ones(1, adapter.d_model, dtype=adapter.dtype)
    hooks = _hook_counts(model)
    with embedding_noise(model, torch.tensor([5]), noise, replaceable=replaceable):
        after = adapter.embed(ids)[0]
    torch.testing.assert_close(after[[1, 3]], before[[1, 3]] + 1.0)
    torch.testing.assert_close(after[[0, 2]], before[[0, 2]])
    with (
        pytest.raises(RuntimeError, match="boom"),
        embedding_noise(model, ids[0, :1], noise, replaceable=replaceable),
    ):
        raise RuntimeError("boom")
    assert _hook_counts(model) == hooks
    assert all(n == 0 for n in _hook_counts(model))


def test_a_replaced_hook_embed_replaces_the_noise(model):
    """The noised forward of replaced embeddings R equals the clean forward of R: the noise is
    part of the token's embedding, upstream of ``hook_embed``, on both backends."""
    adapter = ModelAdapter(model)
    ids = torch.tensor([[1, 5, 7, 5]])
    replaced = torch.randn(1, 4, adapter.d_model, dtype=adapter.dtype)
    clean = adapter.last_log_probs(ids, replaced)
    noise = torch.full((3, adapter.d_model), 0.5, dtype=adapter.dtype)
    with embedding_noise(model, torch.tensor([1, 5, 7]), noise):
        noised = adapter.last_log_probs(ids, replaced)
    torch.testing.assert_close(noised, clean, rtol=0, atol=0)


def test_legacy_bridge_placement_adds_the_noise_on_top_of_replaced_embeddings():
    """What the ``legacy`` protocol reproduces on a bridge: the noise lands after
    ``hook_embed``, so replacing it does not remove the noise."""
    model = tiny_bridge()
    adapter = ModelAdapter(model)
    ids = torch.tensor([[1, 5, 7, 5]])
    replaced = torch.zeros(1, 4, adapter.d_model, dtype=adapter.dtype)
    noise = torch.full((3, adapter.d_model), 0.5, dtype=adapter.dtype)
    with embedding_noise(model, torch.tensor([1, 5, 7]), noise, replaceable=False):
        legacy = adapter.last_log_probs(ids, replaced)
    shifted = replaced + 0.5
    torch.testing.assert_close(legacy, adapter.last_log_probs(ids, shifted), rtol=0, atol=0)
    assert not torch.equal(legacy, adapter.last_log_probs(ids, replaced))


def test_prefix_reruns_equal_full_reruns_under_the_noise(model):
    """Under the noise the prefix-KV path (cached unmasked prefix) and full-length reruns
    give the same information term: both see each token's noised embedding once."""
    tokens = torch.tensor([1, 5, 7, 5, 9, 3, 2])
    base = H.HetaConfig(use_curvature=False)
    noise = torch.randn(4, ModelAdapter(model).d_model, dtype=torch.float64) * 0.3
    with embedding_noise(model, torch.tensor([1, 5, 7, 9]), noise):
        prefix = H.attribute(model, tokens, config=base.updated(information=Information()))
        full = H.attribute(
            model, tokens, config=base.updated(information=Information(strategy="batched"))
        )
    assert prefix.information is not None and full.information is not None
    # float64: the two paths differ by the batching of the same forwards (the bound of
    # tests/unit/test_prefix_kl.py)
    torch.testing.assert_close(prefix.information, full.information, rtol=1e-10, atol=1e-12)
