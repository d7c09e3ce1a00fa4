"""Devices and dtypes: parsing, ``load_model(device=, dtype=)``, the CLI flags, and where the
engine puts every tensor it creates.

No GPU here (CI has none): CUDA is faked only where nothing CUDA runs (``resolve_device``
reads ``torch.cuda.is_available``/``device_count``); what really runs on CUDA is in
``tests/cuda`` (marker ``cuda``, ``scripts/device_check.sh``). On the CPU this checks that
every probe, masked copy, HVP vector and result tensor is on the model's device in the dtype
it computes in (float64, float32; float32 for a bfloat16 model).
"""

import argparse
import json

import pytest
import torch

import heta_lens as H
from heta_lens import cli, cli_demo
from heta_lens.curvature.hvp import HvpOperator
from heta_lens.devices import DeviceOptions, cast_floating, resolve_device, resolve_dtype
from heta_lens.hooks import ModelAdapter
from heta_lens.hooks.prefix import PrefixCache
from heta_lens.models import load_model
from heta_lens.result import from_dict
from heta_lens.testing import tiny_bridge, tiny_hooked, tiny_llama_hf

PROMPT = "w5 w7 w3 w9 w11"


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


@pytest.mark.usefixtures("two_gpus")
def test_resolve_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


@pytest.mark.usefixtures("no_cuda")
def test_auto_is_the_cpu_without_cuda():
    assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.parametrize(
    ("device", "error", "message"),
    [
        ("cuda", ValueError, "CUDA is not available"),
        ("cuda:0", ValueError, "CUDA is not available"),
        (torch.device("cuda"), ValueError, "CUDA is not available"),
        ("gpu", ValueError, "unknown device 'gpu'; valid: auto, cpu, cuda, cuda:N"),
        ("mps", ValueError, "runs on cpu or cuda"),
        (0, TypeError, "string or a torch.device; got int"),
    ],
)
@pytest.mark.usefixtures("no_cuda")
def test_resolve_device_errors(device, error, message):
    with pytest.raises(error, match=message):
        resolve_device(device)


@pytest.mark.usefixtures("two_gpus")
def test_a_cuda_index_past_the_last_device_is_refused():
    with pytest.raises(ValueError, match="'cuda:2' requested but only 2 CUDA"):
        resolve_device("cuda:2")


@pytest.mark.parametrize(
    ("name", "dtype"),
    [("float32", torch.float32), ("bfloat16", torch.bfloat16), ("float16", torch.float16)]
    + [("float64", torch.float64), (torch.bfloat16, torch.bfloat16)],
)
def test_resolve_dtype(name, dtype):
    assert resolve_dtype(name) is dtype


@pytest.mark.parametrize(
    ("dtype", "error", "message"),
    [
        ("half", ValueError, "unknown dtype 'half'; valid: float32, bfloat16, float16, float64"),
        (torch.int64, ValueError, "must be a floating type .* got torch.int64"),
        (torch.float8_e4m3fn, ValueError, "must be a floating type"),
        (torch.complex64, ValueError, "must be a floating type"),
        (32, TypeError, "string or a torch.dtype; got int"),
    ],
)
def test_resolve_dtype_errors(dtype, error, message):
    with pytest.raises(error, match=message):
        resolve_dtype(dtype)


def test_cast_floating_keeps_rotary_frequencies_in_float32_for_half_precision():
    hf = tiny_llama_hf(dtype=torch.float32)
    frequencies = {name: b.clone() for name, b in hf.named_buffers() if b.is_floating_point()}
    assert frequencies  # the rotary inverse frequencies
    cast_floating(hf, torch.bfloat16)
    assert {p.dtype for p in hf.parameters()} == {torch.bfloat16}
    for name, buffer in hf.named_buffers():
        if name in frequencies:
            assert buffer.dtype == torch.float32 and torch.equal(buffer, frequencies[name])
    cast_floating(hf, torch.float64)  # float32/float64: parameters and buffers alike
    floating = [t for t in [*hf.parameters(), *hf.buffers()] if t.is_floating_point()]
    assert {t.dtype for t in floating} == {torch.float64}


@pytest.mark.bridge
@pytest.mark.parametrize("dtype", ["bfloat16", torch.float16, "float64"])
def test_load_model_in_a_dtype(model_dir, dtype):
    model = load_model(str(model_dir), device="cpu", dtype=dtype)
    expected = resolve_dtype(dtype)
    assert {p.dtype for p in model.parameters()} == {expected}
    assert all(p.device == torch.device("cpu") for p in model.parameters())
    assert ModelAdapter(model).dtype == (
        torch.float64 if expected == torch.float64 else torch.float32
    )


@pytest.mark.hooked
def test_load_hooked_model_in_bfloat16(model_dir):
    model = load_model(str(model_dir), backend="hooked", dtype="bfloat16")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.cfg.dtype == torch.bfloat16 and str(model.cfg.device) == "cpu"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"device": "cuda"}, "CUDA is not available"),
        ({"dtype": torch.int32}, "must be a floating type"),
        ({"dtype": "fp8"}, "unknown dtype 'fp8'"),
    ],
)
@pytest.mark.usefixtures("no_cuda")
def test_load_model_checks_device_and_dtype_before_loading(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_model("/no/such/model", **kwargs)  # the bad option is named, not the path


def _parse(argv: list[str]) -> argparse.Namespace:
    return cli._parser().parse_args(argv)


@pytest.mark.parametrize(
    "command", [["attribute", PROMPT], ["bench"], ["demo"], ["eval", "curated"]]
)
def test_every_command_that_loads_a_model_takes_device_and_dtype(command):
    defaults = _parse(command)
    assert (defaults.device, defaults.dtype) == ("cpu", "float32")
    chosen = _parse([*command, "--device", "auto", "--dtype", "bfloat16"])
    assert (chosen.device, chosen.dtype) == ("auto", "bfloat16")


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--device", "tpu"], "invalid choice: 'tpu'"), (["--dtype", "int8"], "invalid choice")],
)
def test_cli_refuses_unknown_devices_and_dtypes(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parse(["attribute", PROMPT, *flags])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("command", [["attribute", PROMPT], ["demo", "--no-preload"]])
@pytest.mark.usefixtures("no_cuda")
def test_cli_without_cuda_exits_2_before_loading(command, capsys, monkeypatch):
    monkeypatch.setattr(cli_demo, "has_gradio", lambda: True)
    assert cli.main([*command, "--device", "cuda", "--model", "/no/such/model"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_demo_loader_is_load_model_on_the_device_and_dtype():
    loader = cli_demo.model_loader(DeviceOptions(device="cpu", dtype="bfloat16"))
    assert loader.keywords == {"device": torch.device("cpu"), "dtype": torch.bfloat16}


@pytest.mark.bridge
def test_attribute_cli_on_a_bfloat16_model(model_dir, tmp_path):
    out = tmp_path / "r.json"
    argv = ["attribute", PROMPT, "--model", str(model_dir), "--target-index", "4"]
    assert cli.main([*argv, "--dtype", "bfloat16", "--json", str(out)]) == 0
    [got] = [from_dict(d) for d in json.loads(out.read_text())]
    model = load_model(str(model_dir), dtype="bfloat16")
    expected = H.attribute(model, model.to_tokens(PROMPT)[0], target=4)
    assert expected.scores.dtype == torch.float32
    torch.testing.assert_close(got.scores, expected.scores.double(), rtol=0, atol=0)


# ----------------------------------------------------------------- where tensors are created
TENSOR_SPIES = ("HvpOperator.__init__", "HvpOperator.__call__", "last_log_probs", "suffix")


def _record(monkeypatch) -> list[tuple[str, torch.device, torch.dtype]]:
    """Spy on the engine's inner calls: the device and dtype of every floating tensor given
    to an HVP operator (the point x, the probe vectors), to a forward with replaced
    embeddings (masked copies) and to a prefix-cache rerun."""
    seen: list[tuple[str, torch.device, torch.dtype]] = []

    def note(where: str, *tensors: object) -> None:
        for t in tensors:
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                seen.append((where, t.device, t.dtype))

    init, call = HvpOperator.__init__, HvpOperator.__call__
    last, suffix = ModelAdapter.last_log_probs, PrefixCache.suffix_log_probs

    def spy_init(self, fn, x, **kwargs):
        note("HvpOperator.__init__", x)
        init(self, fn, x, **kwargs)

    def spy_call(self, vectors):
        note("HvpOperator.__call__", vectors)
        return call(self, vectors)

    def spy_last(self, tokens, embeds=None, **kwargs):
        note("last_log_probs", embeds)
        return last(self, tokens, embeds, **kwargs)

    def spy_suffix(self, embeds):
        note("suffix", embeds)
        return suffix(self, embeds)

    monkeypatch.setattr(HvpOperator, "__init__", spy_init)
    monkeypatch.setattr(HvpOperator, "__call__", spy_call)
    monkeypatch.setattr(ModelAdapter, "last_log_probs", spy_last)
    monkeypatch.setattr(PrefixCache, "suffix_log_probs", spy_suffix)
    return seen


@pytest.mark.parametrize(
    ("model_id", "dtype", "computes_in"),
    [
        pytest.param("bridge", torch.float64, torch.float64, marks=pytest.mark.bridge),
        pytest.param("bridge", torch.bfloat16, torch.float32, marks=pytest.mark.bridge),
        pytest.param("hooked", torch.float32, torch.float32, marks=pytest.mark.hooked),
        pytest.param("hooked", torch.float16, torch.float32, marks=pytest.mark.hooked),
    ],
)
def test_probes_copies_and_results_share_the_models_device_and_dtype(
    model_id, dtype, computes_in, tokens, monkeypatch
):
    model = tiny_bridge(dtype=dtype) if model_id == "bridge" else tiny_hooked("gqa", dtype=dtype)
    device = next(model.parameters()).device
    seen = _record(monkeypatch)
    results = [
        H.get_method("heta").with_preset(preset)(model, tokens)
        for preset in ("full", "fast", "LR", "LS")  # eq. 3, row-block, low-rank sketch, layer
    ]
    results += [H.get_method(m)(model, tokens) for m in ("occlusion", "kl_occlusion", "reagent")]
    assert {where for where, _, _ in seen} == set(TENSOR_SPIES)
    assert {(d, t) for _, d, t in seen} == {(device, computes_in)}
    for result in results:
        for name, value in vars(result).items():
            if isinstance(value, torch.Tensor):
                assert value.device == device, (result.method, name)
                assert value.dtype == (torch.long if name == "tokens" else computes_in), name
