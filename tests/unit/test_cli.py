"""`heta-lens attribute` end to end on a tiny local HF model directory (no SmolLM2 needed)."""

import json

import pytest
import torch

import heta_lens as H
from heta_lens.cli import format_table, main
from heta_lens.models import load_model
from heta_lens.result import from_dict

PROMPT = "w5 w7 w3 w9 w11"


@pytest.mark.bridge
@pytest.mark.parametrize(
    "flags",
    [
        [],
        ["--preset", "fast"],
        ["--method", "heta_kl_only", "--preset", "row"],
        ["--method", "occlusion"],
        ["--n-probes", "2"],
    ],
)
def test_json_equals_the_registry_call_with_the_same_config(model_dir, tmp_path, capsys, flags):
    out = tmp_path / "r.json"
    argv = ["attribute", PROMPT, "--model", str(model_dir), "--target-index", "4"]
    assert main([*argv, *flags, "--json", str(out)]) == 0
    [got] = [from_dict(d) for d in json.loads(out.read_text())]
    options = dict(zip(flags[::2], flags[1::2], strict=True))
    spec = H.get_method(options.get("--method", "heta"))
    if "--preset" in options:
        spec = spec.with_preset(options["--preset"])
    config = spec.default_config
    if "--n-probes" in options:
        config = config.with_probes(int(options["--n-probes"]))
    model = load_model(str(model_dir))
    expected = spec(model, model.to_tokens(PROMPT)[0], target=4, config=config)
    assert got.method == spec.name and got.target == 4
    torch.testing.assert_close(got.scores, expected.scores.double(), rtol=1e-6, atol=1e-9)
    table = capsys.readouterr().out
    assert table.startswith("target [4]") and f"method={spec.name}" in table


def test_format_table_ranks_by_score_and_shows_components(model_dir):
    model = load_model(str(model_dir))
    result = H.attribute(model, model.to_tokens(PROMPT)[0], target=4)
    lines = format_table(result, top=3).splitlines()
    assert len(lines) == 2 + 3
    ranked = [pos for pos, _, _ in result.top(3)]
    assert [int(line.split()[1]) for line in lines[2:]] == ranked
    assert "information" in lines[1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["attribute", PROMPT, "--method", "lime"], "unknown method 'lime'"),
        (["attribute", PROMPT, "--method", "occlusion", "--preset", "fast"], "not 'occlusion'"),
        (["attribute", PROMPT, "--method", "saliency", "--n-probes", "2"], "not 'saliency'"),
        (["attribute", PROMPT, "--n-probes", "0"], "n_probes must be >= 1"),
        (["attribute", PROMPT, "--model", "/no/such/model"], "/no/such/model"),
    ],
)
def test_bad_input_exits_2_with_a_message(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err
