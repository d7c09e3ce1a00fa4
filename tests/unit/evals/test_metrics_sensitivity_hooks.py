"""Sensitivity's embedding noise goes through the adapter and never outlives its block."""

import pytest
import torch

from heta_lens.evals.metrics.sensitivity import embedding_noise
from heta_lens.hooks import ModelAdapter


def test_embedding_noise_adds_to_matching_ids_and_leaves_no_hook_even_on_error(model):
    adapter = ModelAdapter(model)
    ids = torch.tensor([[1, 5, 7, 5]])
    before = adapter.embed(ids)[0]
    noise = torch.ones(1, adapter.d_model, dtype=adapter.dtype)
    hooks = len(adapter.model.embed._forward_hooks)
    with embedding_noise(model, torch.tensor([5]), noise):
        after = adapter.embed(ids)[0]
    torch.testing.assert_close(after[[1, 3]], before[[1, 3]] + 1.0)
    torch.testing.assert_close(after[[0, 2]], before[[0, 2]])
    with pytest.raises(RuntimeError, match="boom"), embedding_noise(model, ids[0, :1], noise):
        raise RuntimeError("boom")
    assert len(adapter.model.embed._forward_hooks) == hooks
