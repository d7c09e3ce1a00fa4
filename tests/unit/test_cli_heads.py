"""`heta-lens attribute --heads / --interactions` end to end on a tiny local HF model."""

import json

import pytest
import torch

import heta_lens as H
from heta_lens.cli import main
from heta_lens.models import load_model
from heta_lens.result import from_dict

pytestmark = pytest.mark.bridge
PROMPT = "w5 w7 w3 w9 w11"


def test_heads_and_interactions_reach_json_table_and_page(model_dir, tmp_path, capsys):
    out, page = tmp_path / "r.json", tmp_path / "r.html"
    argv = ["attribute", PROMPT, "--model", str(model_dir), "--target-index", "4", "--n-probes"]
    argv += ["2", "--heads", "--interactions", "--json", str(out), "--html", str(page)]
    assert main(argv) == 0
    [got] = [from_dict(d) for d in json.loads(out.read_text())]
    assert isinstance(got, H.HetaResult)
    spec = H.get_method("heta").with_probes(2).keeping(gate_by_head=True, interactions=True)
    model = load_model(str(model_dir))
    expected = spec(model, model.to_tokens(PROMPT)[0], target=4)
    assert isinstance(expected, H.HetaResult) and got.config == expected.config
    for field in ("gate_by_head", "interactions"):
        want = getattr(expected, field)
        torch.testing.assert_close(getattr(got, field), want.double(), rtol=1e-6, atol=1e-9)
    top = got.top(1)[0][0]
    assert f"heads carrying [{top}]" in capsys.readouterr().out
    text = page.read_text(encoding="utf-8")
    assert '<div class="map heads">' in text and '<div class="map interactions">' in text


def test_heads_takes_a_position(model_dir, capsys):
    argv = ["attribute", PROMPT, "--model", str(model_dir), "--target-index", "4"]
    assert main([*argv, "--n-probes", "1", "--heads", "2"]) == 0
    assert "heads carrying [2] 'w7'" in capsys.readouterr().out
    assert main([*argv, "--n-probes", "1", "--heads", "9"]) == 2
    assert "outside the context" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--interactions", "--preset", "fast"], "'row' curvature estimator cannot give pairwise"),
        (["--interactions", "--method", "heta_kl_only"], "need use_curvature=True"),
        (["--heads", "--method", "occlusion"], "--heads applies to HETA-family methods"),
        (["--interactions", "--method", "saliency"], "--interactions applies to HETA-family"),
    ],
)
def test_flags_that_cannot_apply_exit_2_with_a_message(flags, message, capsys):
    assert main(["attribute", PROMPT, *flags]) == 2
    assert message in capsys.readouterr().err
