"""One shared HETA run gives exactly what each family member gives alone."""

import pytest
import torch

from heta_lens import attribute
from heta_lens.config import HetaConfig
from heta_lens.family import heta_family
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
