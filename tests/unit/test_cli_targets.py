"""`heta-lens attribute --contrast / --span` on a tiny local HF model directory."""

import json

import pytest
import torch

import heta_lens as H
from heta_lens.cli import main
from heta_lens.models import load_model
from heta_lens.result import from_dict
from heta_lens.targets import Contrast, Span
from heta_lens.viz import results_from_html

PROMPT = "w5 w7 w3 w9 w11"


def _run(model_dir, tmp_path, flags):
    out, page = tmp_path / "r.json", tmp_path / "r.html"
    argv = ["attribute", PROMPT, "--model", str(model_dir), "--n-probes", "2", *flags]
    assert main([*argv, "--json", str(out), "--html", str(page)]) == 0
    [got] = [from_dict(d) for d in json.loads(out.read_text())]
    return got, page.read_text()


@pytest.mark.bridge
@pytest.mark.parametrize(
    ("flags", "target"),
    [
        (["--contrast", " w8", "--target-text", " w6"], Contrast(" w6", " w8")),
        (["--span", " w13 w17"], Span(" w13 w17")),
    ],
)
def test_target_flags_equal_the_library_call(model_dir, tmp_path, capsys, flags, target):
    got, page = _run(model_dir, tmp_path, flags)
    model = load_model(str(model_dir))
    spec = H.get_method("heta")
    expected = spec(model, PROMPT, target=target, config=spec.default_config.with_probes(2))
    torch.testing.assert_close(got.scores, expected.scores.double(), rtol=1e-6, atol=1e-9)
    assert got.target_kind == expected.target_kind == type(target).__name__.lower()
    assert got.target_value == pytest.approx(expected.target_value, rel=1e-6)
    table = capsys.readouterr().out
    assert table.startswith(f"target {got.target_kind}: {got.target_description}  f=")
    assert got.target_description in page.replace("&#x27;", "'")
    [back] = results_from_html(page)
    assert back.target_kind == got.target_kind and back.target == got.target


@pytest.mark.bridge
def test_contrast_without_target_text_uses_the_greedy_token(model_dir, tmp_path):
    got, _ = _run(model_dir, tmp_path, ["--contrast", " w8"])
    model = load_model(str(model_dir))
    ids = model.to_tokens(PROMPT)[0]
    greedy = int(model(ids[None])[0, -1].argmax())
    assert got.target_description.startswith(f"logit('w{greedy}') − logit('w8')")


@pytest.mark.bridge
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--contrast", " w8 w9"], "foil ' w8 w9' tokenizes to 2 tokens"),
        (["--contrast", " w8", "--generate", "2"], "does not combine with --generate"),
        (["--span", "w3"], "merges across the boundary"),
    ],
)
def test_bad_target_flags_exit_2_with_the_reason(model_dir, capsys, flags, message):
    assert main(["attribute", PROMPT, "--model", str(model_dir), *flags]) == 2
    assert message in capsys.readouterr().err
