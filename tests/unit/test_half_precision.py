"""bfloat16 / float16 models: heta_lens computes on them in float32, on their exact weights.

The rule (:mod:`heta_lens.hooks.precision`): inside the state guard a half-precision model's
weights are upcast to float32 and put back afterwards. Checked against the float64 oracles of
:mod:`tests.unit.arch_checks` run on a copy of the same weights upcast to float64 (exact: every
bfloat16/float16 value is a float64 value), and, so that these tests can fail, the same
oracles run in the model's own half precision miss the tolerances by far.

Tolerances: :data:`tests.unit.arch_checks.FLOAT32_TOLERANCES` (float32 level, measured on these
models). The half-precision oracles miss by 6e-4..1e-2 relative (gate), 4e-4..1.4e-2 relative
(curvature) and 7e-4..1.6e-2 nats (information).
"""

import pytest
import torch

import heta_lens as H
from heta_lens.hooks import ModelAdapter
from tests.conftest import make_model, model_params
from tests.unit import arch_checks as A

GATE_TOL, CURVATURE_TOL, INFORMATION_TOL = (
    A.FLOAT32_TOLERANCES[k] for k in ("gate", "curvature", "information")
)
HALF = [pytest.param(torch.bfloat16, id="bf16"), pytest.param(torch.float16, id="fp16")]
TARGET = 6


def excess(got: torch.Tensor, expected: torch.Tensor, tol: dict[str, float]) -> float:
    """max |got − expected| / (atol + rtol·|expected|): > 1 fails ``assert_close(**tol)``."""
    bound = tol["atol"] + tol["rtol"] * expected.abs()
    return float(((got.to(expected) - expected).abs() / bound).max())


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("model_id", model_params())
def test_components_match_the_float64_oracle_of_the_same_weights(model_id, dtype, tokens):
    model = make_model(model_id, dtype)
    reference = A.upcast_copy(model)
    A.check_components(model, tokens, TARGET, reference=reference, tolerances=A.FLOAT32_TOLERANCES)


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("model_id", model_params())
def test_the_same_oracles_in_half_precision_miss_these_tolerances(model_id, dtype, tokens):
    """What a computation in the model's own dtype gives: far outside every tolerance above."""
    model = make_model(model_id, dtype)
    reference = A.upcast_copy(model)
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


@pytest.mark.parametrize("model_id", model_params())
def test_model_restored_bit_for_bit_after_a_run(model_id, tokens, monkeypatch):
    model = make_model(model_id, torch.bfloat16)
    model(tokens[None])  # a bridge installs its own lazy hooks on first use
    cfg_dtype = model.cfg.dtype
    before = A.snapshot(model)
    seen: set[torch.dtype] = set()
    original = ModelAdapter.last_log_probs

    def spy(self, ids, embeds=None, **kwargs):
        seen.update(p.dtype for p in self.model.parameters())
        return original(self, ids, embeds, **kwargs)

    monkeypatch.setattr(ModelAdapter, "last_log_probs", spy)
    H.attribute(model, tokens, config=H.HetaConfig.flat(n_probes=1))
    H.get_method("occlusion")(model, tokens)
    assert seen == {torch.float32}  # the run did see float32 weights
    A.assert_restored(model, before, torch.bfloat16)
    assert model.cfg.dtype == cfg_dtype


@pytest.mark.parametrize("model_id", model_params())
def test_model_restored_when_a_run_raises_midway(model_id, tokens, monkeypatch):
    model = make_model(model_id, torch.float16)
    model(tokens[None])
    before = A.snapshot(model)
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
    A.assert_restored(model, before, torch.float16)


METHODS = ["heta", "heta_no_gate", "occlusion", "kl_occlusion", "saliency", "attention_rollout"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("model_id", model_params(["hooked-gqa", "bridge"]))
def test_results_of_a_half_model_are_float32(model_id, method, tokens):
    """HETA and the baselines run through the same guard, so the same rule."""
    model = make_model(model_id, torch.bfloat16)
    result = H.get_method(method)(model, tokens, config=None)
    fields = {k: v for k, v in vars(result).items() if isinstance(v, torch.Tensor)}
    assert fields["tokens"].dtype == torch.long
    floats = {k: v.dtype for k, v in fields.items() if k != "tokens"}
    assert floats and set(floats.values()) == {torch.float32}, floats
    reference = H.get_method(method)(A.upcast_copy(model, torch.float32), tokens, config=None)
    torch.testing.assert_close(result.scores, reference.scores, rtol=0, atol=0)
