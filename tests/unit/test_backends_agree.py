"""The same tiny Llama as HookedTransformer and TransformerBridge gives the same HETA.

The two paths differ only by HF computing RoPE angles in float32 (TL in the model dtype), a
~1e-8 perturbation in float64; tolerances below sit just above that floor.
"""

import pytest
import torch

import heta_lens as H
from heta_lens.testing import tiny_pair

pytestmark = [pytest.mark.hooked, pytest.mark.bridge]


@pytest.fixture(scope="module")
def pair():
    return tiny_pair()


def test_logits_agree(pair):
    hooked, bridge = pair
    ids = torch.tensor([[1, 5, 7, 3, 9, 11]])
    torch.testing.assert_close(hooked(ids), bridge(ids), rtol=0, atol=1e-6)


def test_all_components_agree(pair):
    hooked, bridge = pair
    ids = torch.tensor([1, 5, 7, 3, 9, 11])
    config = H.HetaConfig.flat(n_probes=3)
    a, b = H.attribute(hooked, ids, config=config), H.attribute(bridge, ids, config=config)
    torch.testing.assert_close(a.gate, b.gate, rtol=1e-6, atol=0)
    assert a.curvature is not None and b.curvature is not None
    torch.testing.assert_close(a.curvature, b.curvature, rtol=1e-6, atol=0)
    assert a.information is not None and b.information is not None
    torch.testing.assert_close(a.information, b.information, rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(a.scores, b.scores, rtol=1e-6, atol=1e-12)
