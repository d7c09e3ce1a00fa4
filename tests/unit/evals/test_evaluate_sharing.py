"""The eval runner reads KL-occlusion and occlusion off the HETA family's run only when it is
the same computation (same mask, no window), and the rows it writes then equal a separate run."""

import pytest
import torch

from heta_lens.evals.evaluate import run_methods
from heta_lens.evals.settings import EvalSettings
from heta_lens.methods.occlusion import kl_occlusion, occlusion
from heta_lens.testing import tiny_bridge

TOKENS = torch.tensor([1, 5, 7, 3, 9, 11, 4, 8])
TARGET = 6


def _run(names, **overrides):
    settings = EvalSettings(dataset="toy", model="tiny-bridge", n_draws=1, **overrides)
    model = tiny_bridge()
    out = {
        r.method: (r, shared)
        for r, _, shared in run_methods(
            model, TOKENS, target=TARGET, names=names, settings=settings
        )
    }
    return model, out


def test_occlusion_baselines_are_read_off_the_family_run_and_equal_their_own_runs():
    model, out = _run(["heta", "kl_occlusion", "occlusion", "saliency"])
    assert list(out) == ["heta", "kl_occlusion", "occlusion", "saliency"]
    assert out["kl_occlusion"][1] and out["occlusion"][1] and not out["saliency"][1]
    derived = out["kl_occlusion"][0]
    alone = kl_occlusion(model, TOKENS, target=TARGET)
    assert derived.equals(alone, rtol=1e-10, atol=1e-12)
    assert alone.scores.max() > 1e-3
    heta = out["heta"][0]
    torch.testing.assert_close(derived.scores, heta.information, rtol=0, atol=0)
    drop = out["occlusion"][0]
    drop_alone = occlusion(model, TOKENS, target=TARGET)
    assert drop.equals(drop_alone, rtol=1e-10, atol=1e-12)
    assert drop_alone.scores.abs().max() > 1e-3


@pytest.mark.parametrize(
    ("names", "overrides"),
    [
        (["kl_occlusion"], {}),  # no family run to read from
        (["heta_hessian_only", "kl_occlusion"], {}),  # the family computed no I
        (["heta", "kl_occlusion"], {"heta_overrides": (("mask", "mean"),)}),  # another mask
        (["heta", "kl_occlusion"], {"heta_overrides": (("window", 4),)}),  # windowed I
    ],
)
def test_occlusion_baselines_run_alone_when_the_family_did_not_compute_them(names, overrides):
    model, out = _run([*names, "occlusion"], **overrides)
    for name, method in (("kl_occlusion", kl_occlusion), ("occlusion", occlusion)):
        result, shared = out[name]
        assert not shared
        alone = method(model, TOKENS, target=TARGET)
        assert result.equals(alone, rtol=0, atol=0)
