"""bfloat16 / float16 models: heta_lens computes on them in float32, on their exact weights.

The rule (:mod:`heta_lens.hooks.precision`): inside the state guard a half-precision model's
weights are upcast to float32 and put back afterwards. Checked against the float64 oracles of
:mod:`tests.unit.arch_checks` run on a copy of the same weights upcast to float64 (exact: every
bfloat16/float16 value is a float64 value), and, so that these tests can fail, the same
oracles run in the model's own half precision miss the tolerances by far.

Tolerances (float32 level), measured on the four tiny models below with the fixture tokens,
targets 6 and 4, bfloat16 and float16: largest relative error of the float32 computation
against the float64 oracle 3.1e-7 (gate) and 5.4e-7 (curvature); information, largest absolute
error 2.5e-7 nats (relative errors reach 5e-3 only where I is ~3e-5). Half-precision oracles
miss by 6e-4..1e-2 relative (gate), 4e-4..1.4e-2 relative (curvature), 7e-4..1.6e-2 nats.
"""

import copy

import pytest
import torch

import heta_lens as H
from heta_lens.hooks import ModelAdapter
from heta_lens.hooks.guard import hook_point_hook_count
from heta_lens.testing import TinyVariant, tiny_bridge, tiny_hooked
from tests.conftest import HOOKED_VARIANTS, model_params
from tests.unit import arch_checks as A

GATE_TOL = {"rtol": 1e-5, "atol": 0.0}  # measured floor 3.1e-7 relative
CURVATURE_TOL = {"rtol": 1e-5, "atol": 0.0}  # measured floor 5.4e-7 relative
INFORMATION_TOL = {"rtol": 1e-5, "atol": 2e-6}  # measured floor 2.5e-7 nats
HALF = [pytest.param(torch.bfloat16, id="bf16"), pytest.param(torch.float16, id="fp16")]
TARGET = 6


VARIANTS: dict[str, TinyVariant] = {f"hooked-{v}": v for v in HOOKED_VARIANTS}


def make(model_id: str, dtype: torch.dtype):
    if model_id == "bridge":
        return tiny_bridge(dtype=dtype)
    return tiny_hooked(VARIANTS[model_id], dtype=dtype)


def upcast(model, dtype: torch.dtype = torch.float64):
    """A copy of ``model`` with every floating weight cast to ``dtype`` (TL updates cfg)."""
    return copy.deepcopy(model).to(dtype, print_details=False)


def excess(got: torch.Tensor, expected: torch.Tensor, tol: dict[str, float]) -> float:
    """max |got − expected| / (atol + rtol·|expected|): > 1 fails ``assert_close(**tol)``."""
    bound = tol["atol"] + tol["rtol"] * expected.abs()
    return float(((got.to(expected) - expected).abs() / bound).max())


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("model_id", model_params())
def test_components_match_the_float64_oracle_of_the_same_weights(model_id, dtype, tokens):
    model = make(model_id, dtype)
    reference = upcast(model)
    A.check_gate(model, tokens, TARGET, reference=reference, **GATE_TOL)
    A.check_curvature(model, tokens, TARGET, reference=reference, **CURVATURE_TOL)
    A.check_information(model, tokens, TARGET, reference=reference, **INFORMATION_TOL)


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("model_id", model_params())
def test_the_same_oracles_in_half_precision_miss_these_tolerances(model_id, dtype, tokens):
    """What a computation in the model's own dtype gives: far outside every tolerance above."""
    model = make(model_id, dtype)
    reference = upcast(model)
    probes = A.fixed_probes(TARGET, model.cfg.d_model)
    pairs = [
        (A.oracle_gate(model, tokens, TARGET), A.oracle_gate(reference, tokens, TARGET), GATE_TOL),
        (
            A.oracle_curvature(model, tokens, TARGET, probes),
            A.oracle_curvature(reference, tokens, TARGET, probes),
            CURVATURE_TOL,
        ),
        (
            A.oracle_information(model, tokens, TARGET),
            A.oracle_information(reference, tokens, TARGET),
            INFORMATION_TOL,
        ),
    ]
    for naive, expected, tol in pairs:
        assert naive.dtype == dtype
        assert excess(naive, expected, tol) > 10


def snapshot(model) -> tuple[dict[str, tuple[torch.Tensor, int, torch.Tensor]], list[object]]:
    """Every parameter and buffer by name (the tensor object, its storage address and a copy),
    then every TransformerLens ``cfg.dtype`` and the hook count."""
    named = [*model.named_parameters(), *model.named_buffers()]
    tensors = {name: (t, t.data_ptr(), t.detach().clone()) for name, t in named}
    cfgs = [getattr(getattr(m, "cfg", None), "dtype", None) for m in model.modules()]
    return tensors, [*cfgs, hook_point_hook_count(model)]


def assert_restored(model, before, dtype: torch.dtype) -> None:
    """The same tensor objects at the same addresses, bit-identical (same dtype, equal
    values), the same ``cfg.dtype``s and no hook left."""
    (tensors, meta), (was, was_meta) = snapshot(model), before
    assert meta == was_meta
    assert tensors.keys() == was.keys()
    for name, (tensor, ptr, value) in tensors.items():
        old, old_ptr, old_value = was[name]
        assert tensor is old and ptr == old_ptr and value.dtype == old_value.dtype, name
        assert torch.equal(value, old_value), name
    assert {p.dtype for p in model.parameters()} == {dtype}


@pytest.mark.parametrize("model_id", model_params())
def test_model_restored_bit_for_bit_after_a_run(model_id, tokens, monkeypatch):
    model = make(model_id, torch.bfloat16)
    model(tokens[None])  # a bridge installs its own lazy hooks on first use
    cfg_dtype = model.cfg.dtype
    before = snapshot(model)
    seen: set[torch.dtype] = set()
    original = ModelAdapter.last_log_probs

    def spy(self, ids, embeds=None, **kwargs):
        seen.update(p.dtype for p in self.model.parameters())
        return original(self, ids, embeds, **kwargs)

    monkeypatch.setattr(ModelAdapter, "last_log_probs", spy)
    H.attribute(model, tokens, config=H.HetaConfig.flat(n_probes=1))
    H.get_method("occlusion")(model, tokens)
    assert seen == {torch.float32}  # the run did see float32 weights
    assert_restored(model, before, torch.bfloat16)
    assert model.cfg.dtype == cfg_dtype


@pytest.mark.parametrize("model_id", model_params())
def test_model_restored_when_a_run_raises_midway(model_id, tokens, monkeypatch):
    model = make(model_id, torch.float16)
    model(tokens[None])
    before = snapshot(model)
    calls = {"n": 0, "dtypes": set()}
    original = ModelAdapter.last_log_probs

    def flaky(self, ids, embeds=None, **kwargs):
        calls["n"] += 1
        calls["dtypes"].update(p.dtype for p in self.model.parameters())
        if calls["n"] == 3:  # inside the HVP loop, with the embedding hook registered

            def boom(act, hook):  # noqa: ARG001
                raise RuntimeError("boom")

            with self.model.hooks(fwd_hooks=[("blocks.0.attn.hook_pattern", boom)]):
                return original(self, ids, embeds, **kwargs)
        return original(self, ids, embeds, **kwargs)

    monkeypatch.setattr(ModelAdapter, "last_log_probs", flaky)
    with pytest.raises(RuntimeError, match="boom"):
        H.attribute(model, tokens, config=H.HetaConfig.flat(n_probes=1, hvp_chunk=1))
    assert calls["n"] == 3 and calls["dtypes"] == {torch.float32}
    assert_restored(model, before, torch.float16)


METHODS = ["heta", "heta_no_gate", "occlusion", "kl_occlusion", "saliency", "attention_rollout"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("model_id", model_params(["hooked-gqa", "bridge"]))
def test_results_of_a_half_model_are_float32(model_id, method, tokens):
    """HETA and the baselines run through the same guard, so the same rule."""
    model = make(model_id, torch.bfloat16)
    result = H.get_method(method)(model, tokens, config=None)
    fields = {k: v for k, v in vars(result).items() if isinstance(v, torch.Tensor)}
    assert fields["tokens"].dtype == torch.long
    floats = {k: v.dtype for k, v in fields.items() if k != "tokens"}
    assert floats and set(floats.values()) == {torch.float32}, floats
    reference = H.get_method(method)(upcast(model, torch.float32), tokens, config=None)
    torch.testing.assert_close(result.scores, reference.scores, rtol=0, atol=0)
