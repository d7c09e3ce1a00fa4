import pytest
import torch
from transformer_lens.model_bridge import TransformerBridge

import heta_lens as H

BRIDGE_ONLY = {"attnlrp"}  # lxt's rules run on the HF Llama model under a bridge


@pytest.mark.parametrize("name", H.list_methods())
def test_every_registered_method_honours_the_contract(model, tokens, name):
    spec = H.get_method(name)
    if name in BRIDGE_ONLY and not isinstance(model, TransformerBridge):
        # a Llama-bridge-only method refuses other models up front, naming the architecture
        with pytest.raises(ValueError, match="unsupported architecture"):
            spec(model, tokens, target=5)
        return
    result = spec(model, tokens, target=5)
    assert isinstance(result, H.AttributionResult)
    assert result.method == name
    assert result.target == 5 and result.scores.shape == (5,)
    assert bool(torch.isfinite(result.scores).all())
    if not result.signed:
        assert bool((result.scores >= 0).all())


def test_registry_lists_heta_and_its_ablations():
    names = H.list_methods()
    assert names[0] == "heta"
    assert {f"heta_{a}" for a in H.ABLATIONS if a != "full"} <= set(names)


def test_unknown_method_lists_valid_names():
    with pytest.raises(ValueError, match="heta_kl_only"):
        H.get_method("lime")


def test_duplicate_registration_rejected():
    spec = H.get_method("heta")
    with pytest.raises(ValueError, match="already registered"):
        H.register_method("heta", spec.fn)


def test_import_heta_lens_does_not_load_the_eval_stack():
    import subprocess
    import sys

    code = (
        "import sys, heta_lens; "
        "print(sorted(m for m in sys.modules if m.startswith('heta_lens.evals')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_every_builtin_method_is_registered_from_one_place():
    from heta_lens.methods import BASELINES, BUILTIN

    assert [spec.name for spec in BUILTIN] == H.list_methods()[: len(BUILTIN)]
    assert all(H.get_method(spec.name) is spec for spec in BUILTIN)
    assert not any(spec.name.startswith("heta") for spec in BASELINES)


def test_signedness_comes_with_the_result(model, tokens):
    from heta_lens.methods.gradients import InputXGradientConfig

    ixg = H.get_method("input_x_gradient")
    summed = ixg(model, tokens, target=5, config=InputXGradientConfig(aggregate="sum"))
    assert summed.signed and not ixg(model, tokens, target=5).signed
    assert H.get_method("occlusion")(model, tokens, target=5).signed
    assert not H.get_method("heta")(model, tokens, target=5).signed


def test_unsigned_result_with_a_negative_score_is_refused():
    tokens = torch.tensor([1, 5, 7])
    with pytest.raises(ValueError, match="negative scores in a result that is not signed"):
        H.AttributionResult(tokens=tokens, target=2, scores=torch.tensor([0.5, -0.1]), method="m")
    signed = H.AttributionResult(
        tokens=tokens, target=2, scores=torch.tensor([0.5, -0.1]), method="m", signed=True
    )
    from heta_lens.result import from_dict

    assert from_dict(signed.to_dict()).signed
    legacy = signed.to_dict()
    del legacy["signed"]  # written before results carried the flag
    assert from_dict(legacy).signed


def test_progress_reaches_methods_that_take_it_and_only_those(model, tokens, monkeypatch):
    from heta_lens.registry import MethodSpec

    seen: dict[str, object] = {}
    heta = H.get_method("heta")

    def without(model, tokens, *, target, config):
        seen["without"] = True
        return heta(model, tokens, target=target, config=config)

    def with_it(model, tokens, *, target, config, progress=False):
        seen["with"] = progress
        return heta(model, tokens, target=target, config=config)

    cfg = H.HetaConfig.flat(n_probes=1)
    for fn in (without, with_it):
        spec = MethodSpec(name=fn.__name__, fn=fn, default_config=cfg, description="")
        assert spec(model, tokens, progress=True).method == fn.__name__
    assert seen == {"without": True, "with": True}
    # the CLI's path: HETA's own entry passes progress on to attribute (bars on stderr)
    calls = []
    monkeypatch.setattr(
        "heta_lens.methods.heta.attribute",
        lambda *a, progress=False, **k: calls.append(progress) or H.attribute(*a, **k),
    )
    heta(model, tokens, config=cfg, progress=True)
    assert calls == [True]
