"""One shared HETA run gives exactly what each family member gives alone."""

import pytest
import torch

from heta_lens import attribute
from heta_lens.config import HetaConfig
from heta_lens.family import baseline_from, heta_family, run_family
from heta_lens.registry import get_method, list_methods
from tests.conftest import model_params

FAMILY = [m for m in list_methods() if isinstance(get_method(m).default_config, HetaConfig)]


@pytest.mark.parametrize("model_id", model_params(["hooked-ln", "bridge"]))
def test_family_equals_separate_runs(model_id):
    from tests.conftest import make_model

    model = make_model(model_id)
    tokens = torch.tensor([1, 5, 7, 3, 9, 11, 4])
    configs = {m: get_method(m).default_config for m in FAMILY}
    configs = {m: c.with_probes(2) for m, c in configs.items()}
    shared = heta_family(model, tokens, target=5, configs=configs)
    assert list(shared) == FAMILY
    for name, config in configs.items():
        alone = attribute(model, tokens, target=5, config=config)
        assert shared[name].method == name
        torch.testing.assert_close(shared[name].scores, alone.scores, rtol=1e-12, atol=1e-14)
        assert (shared[name].curvature is None) == (alone.curvature is None)
        assert (shared[name].information is None) == (alone.information is None)


@pytest.mark.bridge
def test_family_windowed_member_runs_alone():
    from heta_lens.testing import tiny_bridge

    model = tiny_bridge()
    tokens = torch.tensor([1, 5, 7, 3, 9, 11, 4, 8, 2])
    configs = {
        "plain": HetaConfig.flat(n_probes=1),
        "win": HetaConfig.flat(n_probes=1, window=4, window_view="window"),
    }
    shared = heta_family(model, tokens, target=8, configs=configs)
    alone = attribute(model, tokens, target=8, config=configs["win"])
    torch.testing.assert_close(shared["win"].scores, alone.scores, rtol=0, atol=0)
    assert len(FAMILY) == 10


def _target(kind, model):
    from heta_lens.targets import Contrast, Metric, Span

    point = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    return {
        "token": 5,
        "contrast": Contrast(5, 8, position=5),
        "span": Span((11, 4)),
        "metric": Metric(point, lambda a: (a**2).sum(), position=4),
    }[kind]


@pytest.mark.parametrize("model_id", model_params(["hooked-ln", "bridge"]))
@pytest.mark.parametrize("kind", ["token", "contrast", "span", "metric"])
def test_occlusion_baselines_read_off_a_family_run_equal_their_own_runs(model_id, kind):
    from heta_lens.methods.occlusion import kl_occlusion, occlusion
    from tests.conftest import make_model

    model = make_model(model_id)
    tokens = torch.tensor([1, 5, 7, 3, 9, 11, 4])
    target = _target(kind, model)
    run_tokens = tokens[:5] if kind == "span" else tokens
    configs = {"heta": HetaConfig.flat(n_probes=1), "kl": HetaConfig.flat(n_probes=1, beta=0.0)}
    run = run_family(model, run_tokens, target=target, configs=configs)
    assert list(run.masked) == ["zero"]  # one set of masked reruns for both members
    torch.testing.assert_close(
        run.masked["zero"].information, run.results["heta"].information, rtol=0, atol=0
    )
    # Occlusion's own run is Captum's FeatureAblation over full-length batched forwards; the
    # family's is the prefix/batched reruns behind I: round-off apart, the same drop f − f_i.
    alone = occlusion(model, run_tokens, target=target)
    derived = baseline_from(run, "occlusion", mask="zero")
    assert derived is not None and derived.signed
    assert derived.equals(alone, rtol=1e-10, atol=1e-12)
    assert alone.scores.abs().max() > 1e-3  # a real comparison, not two zero vectors
    kl = baseline_from(run, "kl_occlusion", mask="zero")
    if kind == "metric":  # KL-occlusion takes no metric: left to its own run (which refuses)
        assert kl is None
        return
    assert kl is not None and not kl.signed
    kl_alone = kl_occlusion(model, run_tokens, target=target)
    assert kl.equals(kl_alone, rtol=1e-10, atol=1e-12)  # prefix vs batched: round-off only
    assert kl_alone.scores.abs().max() > 1e-3


def test_baselines_are_not_read_off_a_run_that_did_not_compute_them(model):
    tokens = torch.tensor([1, 5, 7, 3, 9, 11, 4])
    hessian_only = {"h": HetaConfig.flat(n_probes=1, use_information=False)}
    run = run_family(model, tokens, target=5, configs=hessian_only)
    assert run.masked == {}
    assert baseline_from(run, "occlusion", mask="zero") is None
    assert baseline_from(run, "kl_occlusion", mask="zero") is None
    run = run_family(model, tokens, target=5, configs={"h": HetaConfig.flat(n_probes=1)})
    assert baseline_from(run, "occlusion", mask="mean") is None  # another mask: not computed
    with pytest.raises(ValueError, match="'saliency' cannot be read off a HETA run"):
        baseline_from(run, "saliency", mask="zero")


@pytest.mark.bridge
def test_a_windowed_member_shares_no_masked_reruns():
    from heta_lens.testing import tiny_bridge

    tokens = torch.tensor([1, 5, 7, 3, 9, 11, 4, 8, 2])
    config = HetaConfig.flat(n_probes=1, window=4)
    run = run_family(tiny_bridge(), tokens, target=8, configs={"win": config})
    assert run.masked == {}  # its I came from its own windowed run
    assert baseline_from(run, "kl_occlusion", mask="zero") is None
