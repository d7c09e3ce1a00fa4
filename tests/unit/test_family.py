"""One shared HETA run gives exactly what each family member gives alone."""

import pytest
import torch

from heta_lens import attribute
from heta_lens.config import HetaConfig
from heta_lens.family import heta_family, kl_occlusion_from
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


@pytest.mark.parametrize("model_id", model_params(["hooked-ln", "bridge"]))
@pytest.mark.parametrize("kind", ["token", "contrast", "span"])
def test_kl_occlusion_read_off_a_heta_run_equals_kl_occlusion(model_id, kind):
    from heta_lens.methods.occlusion import kl_occlusion
    from heta_lens.targets import Contrast, Span
    from tests.conftest import make_model

    model = make_model(model_id)
    tokens = torch.tensor([1, 5, 7, 3, 9, 11, 4])
    target = {"token": 5, "contrast": Contrast(5, 8, position=5), "span": Span((11, 4))}[kind]
    run_tokens = tokens[:5] if kind == "span" else tokens
    heta = attribute(model, run_tokens, target=target, config=HetaConfig.flat(n_probes=1))
    alone = kl_occlusion(model, run_tokens, target=target)
    derived = kl_occlusion_from(heta)
    assert derived.equals(alone, rtol=1e-10, atol=1e-12)  # prefix vs batched: round-off only
    assert alone.scores.abs().max() > 1e-3  # a real comparison, not two zero vectors


def test_kl_occlusion_is_not_read_off_a_run_without_it(model):
    from heta_lens.targets import Metric

    tokens = torch.tensor([1, 5, 7, 3, 9, 11, 4])
    hessian_only = attribute(
        model, tokens, target=5, config=HetaConfig.flat(n_probes=1, use_information=False)
    )
    with pytest.raises(ValueError, match="no information term"):
        kl_occlusion_from(hessian_only)
    point = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    metric = attribute(
        model,
        tokens,
        target=Metric(point, lambda a: (a**2).sum(), position=4),
        config=HetaConfig.flat(n_probes=1),
    )
    with pytest.raises(ValueError, match="does not support metric targets"):
        kl_occlusion_from(metric)
