import pytest
import torch

import heta_lens as H


@pytest.mark.parametrize("name", H.list_methods())
def test_every_registered_method_honours_the_contract(model, tokens, name):
    spec = H.get_method(name)
    result = spec(model, tokens, target=5)
    assert isinstance(result, H.AttributionResult)
    assert result.method == name
    assert result.target == 5 and result.scores.shape == (5,)
    assert bool(torch.isfinite(result.scores).all())
    if not spec.signed:
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
