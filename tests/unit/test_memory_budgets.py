"""Memory budgets of the HVPs and the masked reruns: split into smaller chunks (same numbers)
or refuse before anything runs; the model is left untouched either way."""

import pytest
import torch

import heta_lens as H
from heta_lens.config import Hvp, Information, LayerSampled, RowBlock
from heta_lens.curvature.base import hvp_dims
from heta_lens.curvature.hvp import HvpBudgetError, hvp_bytes
from heta_lens.hooks import ModelAdapter
from heta_lens.information import rerun_chunk
from tests.unit.arch_checks import snapshot

ROW = H.HetaConfig(curvature=RowBlock(n_probes=4))


def _one_vector_gb(model, ctx: int, *, n_layers: int | None = None) -> float:
    """The budget in which exactly one HVP vector fits (graph + one vector), in GB."""
    graph, per_vector = hvp_bytes(**hvp_dims(ModelAdapter(model), n_layers=n_layers), ctx=ctx)
    return (graph + per_vector) * 1.001 / 2**30


def test_a_budget_for_one_vector_splits_and_gives_the_same_curvature(model, tokens):
    whole = H.attribute(model, tokens, config=ROW.updated(hvp=Hvp(chunk=4)))
    tight = Hvp(memory_gb=_one_vector_gb(model, tokens.numel() - 1))
    split = H.attribute(model, tokens, config=ROW.updated(hvp=tight))
    assert whole.curvature is not None and split.curvature is not None
    # float64: chunks of 1 vs 4 vmapped double backwards reorder nothing but the batching
    # (the same bound as tests/unit/test_estimators.py's chunking test)
    torch.testing.assert_close(split.curvature, whole.curvature, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("curvature", [RowBlock(n_probes=2), LayerSampled(k=1, n_probes=2)])
def test_a_budget_below_one_vector_is_refused_and_the_model_untouched(model, tokens, curvature):
    ctx = tokens.numel() - 1
    layers = 1 if isinstance(curvature, LayerSampled) else None
    too_small = _one_vector_gb(model, ctx, n_layers=layers) / 2
    before = snapshot(model)
    config = H.HetaConfig(curvature=curvature, hvp=Hvp(memory_gb=too_small))
    with pytest.raises(HvpBudgetError, match=r"more than the HVP memory budget of .* GB"):
        H.attribute(model, tokens, config=config)
    tensors, meta = snapshot(model)
    assert meta == before[1]
    assert all(torch.equal(t[2], before[0][name][2]) for name, t in tensors.items())
    # the layer estimator's HVPs go through its k blocks only: a budget for those suffices
    if layers is not None:
        enough = Hvp(memory_gb=_one_vector_gb(model, ctx, n_layers=layers))
        H.attribute(model, tokens, config=H.HetaConfig(curvature=curvature, hvp=enough))


def test_an_explicit_chunk_is_not_second_guessed(model, tokens):
    config = ROW.updated(hvp=Hvp(chunk=2, memory_gb=1e-9))
    assert H.attribute(model, tokens, config=config).curvature is not None


def test_rerun_chunk_shrinks_only_past_the_budget(model):
    adapter = ModelAdapter(model)
    assert rerun_chunk(adapter, n=7, chunk=16, memory_gb=2.0) == 16
    assert rerun_chunk(adapter, n=7, chunk=16, memory_gb=1e-12) == 1
    smollm2_like = rerun_chunk(adapter, n=4096, chunk=16, memory_gb=1e-3)
    assert 1 <= smollm2_like < 16
    with pytest.raises(ValueError, match="memory_gb must be > 0"):
        rerun_chunk(adapter, n=7, chunk=16, memory_gb=0.0)


@pytest.mark.parametrize("strategy", ["prefix", "batched"])
def test_information_under_a_tight_budget_is_the_same(model, tokens, strategy):
    base = H.HetaConfig(use_curvature=False)
    loose = H.attribute(
        model, tokens, config=base.updated(information=Information(strategy=strategy))
    )
    tight_info = Information(strategy=strategy, memory_gb=1e-12)  # one copy per forward
    tight = H.attribute(model, tokens, config=base.updated(information=tight_info))
    assert loose.information is not None and tight.information is not None
    # float64: batch composition only (the prefix path's chunks also start elsewhere);
    # tests/unit/test_prefix_kl.py bounds the same reorderings at this tolerance
    torch.testing.assert_close(tight.information, loose.information, rtol=1e-10, atol=1e-12)


def test_the_default_budget_is_three_quarters_of_the_free_memory(model, tokens, monkeypatch):
    """``Hvp(memory_gb=None)``: the budget follows the memory free on the device, so the same
    call runs on a machine with room (same numbers as an explicit chunk) and is refused, model
    untouched, on one without."""
    import heta_lens.devices as devices

    assert Hvp().memory_gb is None
    one = _one_vector_gb(model, tokens.numel() - 1)
    whole = H.attribute(model, tokens, config=ROW.updated(hvp=Hvp(chunk=4)))
    monkeypatch.setattr(devices, "free_memory_gb", lambda _device: one / 0.75)
    roomy = H.attribute(model, tokens, config=ROW)
    assert roomy.curvature is not None and whole.curvature is not None
    # float64 chunks of 1 vs 4: the bound of test_a_budget_for_one_vector_splits_...
    torch.testing.assert_close(roomy.curvature, whole.curvature, rtol=1e-10, atol=1e-12)
    monkeypatch.setattr(devices, "free_memory_gb", lambda _device: one / 0.75 / 2)
    before = snapshot(model)
    with pytest.raises(HvpBudgetError, match=r"more than the HVP memory budget"):
        H.attribute(model, tokens, config=ROW)
    tensors, meta = snapshot(model)
    assert meta == before[1]
    assert all(torch.equal(t[2], before[0][name][2]) for name, t in tensors.items())


def test_free_memory_is_read_from_the_operating_system_on_cpu():
    import psutil

    from heta_lens.devices import auto_budget_gb, free_memory_gb

    free = free_memory_gb(torch.device("cpu"))
    assert 0 < free <= psutil.virtual_memory().total / 2**30
    assert 0 < auto_budget_gb(torch.device("cpu"), fraction=0.5) <= free
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
        auto_budget_gb(torch.device("cpu"), fraction=0.0)
