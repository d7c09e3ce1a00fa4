"""On a CUDA GPU: the CPU oracles, results on the GPU, the model restored, SmolLM2 as on the CPU.

Marker ``cuda``: ``scripts/test.sh`` deselects these (CI has no GPU; where CUDA is missing they
fail, they never skip); ``scripts/device_check.sh`` runs them on a GPU machine. The oracles run
on CPU copies of the models (:mod:`tests.unit.arch_checks`).

Tolerances. float64 tiny models: the CPU oracle tests' own (``tests/conftest.py::
oracle_tolerance``: 1e-9 for the float64 HookedTransformers, 1e-5 for the bridge, whose HF
forward runs softmax and RMSNorm in float32). bfloat16 tiny models (computed in float32):
:data:`tests.unit.arch_checks.FLOAT32_TOLERANCES`, measured on the CPU against the same
float64 oracle. SmolLM2 float32 on the GPU vs on the CPU: twice the CPU float32 run's distance
from a float64 run of the same weights (``fast`` preset, the prompt below, measured on the
CPU): gate 2.9e-6, curvature 3.5e-5, information 2.4e-5 relative, scores 1.8e-7 absolute; if the
GPU's float32 is as close to float64 as the CPU's, the two differ by at most twice that.
TF32 matmuls (10-bit mantissa) would break these bounds, so the module refuses to run with
them on.
"""

import copy

import pytest
import torch

import heta_lens as H
from tests.conftest import make_model, model_params, oracle_tolerance
from tests.unit import arch_checks as A

pytestmark = pytest.mark.cuda

CUDA = torch.device("cuda")
METHODS = ("heta", "occlusion", "kl_occlusion", "saliency", "attention_rollout", "reagent")
PROMPT = "The capital of France is Paris"
SMOLLM2_TOLERANCES = {
    "scores": {"rtol": 1e-5, "atol": 4e-7},
    "gate": {"rtol": 6e-6, "atol": 0.0},
    "curvature": {"rtol": 7e-5, "atol": 0.0},
    "information": {"rtol": 5e-5, "atol": 0.0},
}


@pytest.fixture(autouse=True, scope="module")
def _full_precision_gpu():
    assert torch.cuda.is_available(), "tests/cuda need a CUDA GPU: run scripts/device_check.sh"
    assert torch.get_float32_matmul_precision() == "highest", "TF32 matmuls are on"
    assert not torch.backends.cuda.matmul.allow_tf32, "TF32 matmuls are on"


def on_cuda(model):
    """A copy of a CPU model on the GPU, dtypes unchanged (TransformerLens's ``.to`` updates
    ``cfg.device``)."""
    return copy.deepcopy(model).to(CUDA, print_details=False)


def tolerances(model) -> dict[str, dict[str, float]]:
    return {k: oracle_tolerance(model) for k in ("gate", "curvature", "information")}


@pytest.mark.parametrize("model_id", model_params())
def test_float64_components_on_cuda_match_the_cpu_oracle(model_id, tokens):
    cpu = make_model(model_id)
    gpu = on_cuda(cpu)
    A.check_components(gpu, tokens.to(CUDA), 6, reference=cpu, tolerances=tolerances(cpu))


@pytest.mark.parametrize("model_id", model_params())
def test_bfloat16_components_on_cuda_match_the_float64_cpu_oracle(model_id, tokens):
    cpu = make_model(model_id, torch.bfloat16)
    reference = A.upcast_copy(cpu)
    gpu = on_cuda(cpu)
    A.check_components(
        gpu, tokens.to(CUDA), 6, reference=reference, tolerances=A.FLOAT32_TOLERANCES
    )


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16], ids=["fp64", "bf16"])
@pytest.mark.parametrize("model_id", model_params(["hooked-gqa", "bridge"]))
def test_results_on_cuda_and_the_model_restored(model_id, dtype, tokens):
    model = on_cuda(make_model(model_id, dtype))
    model(tokens[None].to(CUDA))  # a bridge installs its own lazy hooks on first use
    before = A.snapshot(model)
    computes_in = torch.float64 if dtype == torch.float64 else torch.float32
    for method in METHODS:
        result = H.get_method(method)(model, tokens.to(CUDA))
        for name, value in vars(result).items():
            if isinstance(value, torch.Tensor):
                assert value.device.type == "cuda", (method, name)
                assert value.dtype == (torch.long if name == "tokens" else computes_in)
    A.assert_restored(model, before, dtype)
    assert all(p.device.type == "cuda" for p in model.parameters())


@pytest.fixture(scope="module")
def smollm2_pair():
    return H.load_model("smollm2-135m"), H.load_model("smollm2-135m", device="cuda")


@pytest.mark.bridge
def test_smollm2_fast_preset_on_cuda_equals_the_cpu(smollm2_pair):
    cpu, gpu = smollm2_pair
    assert next(gpu.parameters()).device.type == "cuda"
    spec = H.get_method("heta").with_preset("fast")
    ids = cpu.to_tokens(PROMPT)[0]
    expected = spec(cpu, ids)
    got = spec(gpu, ids.to(CUDA))
    assert got.scores.device.type == "cuda"
    for name, tol in SMOLLM2_TOLERANCES.items():
        torch.testing.assert_close(getattr(got, name).cpu(), getattr(expected, name), **tol)


@pytest.mark.bridge
def test_a_cuda_generator_is_refused_with_a_clear_error(tokens):
    """Probes are drawn on the CPU (the same on every device): a CUDA generator is an error."""
    model = on_cuda(make_model("bridge"))
    with pytest.raises(ValueError, match="must be a CPU torch.Generator"):
        H.curvature_sensitivity(model, tokens.to(CUDA), generator=torch.Generator(device="cuda"))
