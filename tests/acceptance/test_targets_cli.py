"""The README's contrast (IOI-style) and span examples through the CLI on SmolLM2-135M."""

import json

import pytest
import torch

from heta_lens.cli import main
from heta_lens.result import from_dict

pytestmark = [pytest.mark.slow, pytest.mark.bridge]

IOI = "When Mary and John went to the store, John gave a drink to"
TOWER = "The famous iron tower in Paris is called the"


def _attribute(tmp_path, capsys, text: str, *flags: str):
    out, page = tmp_path / "r.json", tmp_path / "r.html"
    argv = ["attribute", text, "--n-probes", "1", "--json", str(out), "--html", str(page), *flags]
    assert main(argv) == 0
    [result] = [from_dict(d) for d in json.loads(out.read_text())]
    return result, capsys.readouterr().out, page.read_text()


@pytest.mark.usefixtures("no_network")
def test_ioi_contrast_explains_the_logit_difference(smollm2, tmp_path, capsys):
    result, table, page = _attribute(
        tmp_path, capsys, IOI, "--target-text", " Mary", "--contrast", " John"
    )
    ids = smollm2.to_tokens(IOI)[0]
    mary, john = (int(smollm2.to_tokens(t, prepend_bos=False)[0, 0]) for t in (" Mary", " John"))
    with torch.no_grad():
        logits = smollm2(ids[None])[0, -1]
    # f is the logit difference of a plain forward; the model prefers the indirect object.
    assert result.target_value == pytest.approx(float(logits[mary] - logits[john]), rel=1e-4)
    assert result.target_value > 0
    assert result.target_kind == "contrast" and result.target == ids.numel()
    assert result.scores.shape == (ids.numel(),) and bool(torch.isfinite(result.scores).all())
    assert table.startswith("target contrast: logit(' Mary') − logit(' John')")
    assert "contrast" in page and "logit(" in page


@pytest.mark.usefixtures("no_network")
def test_multi_token_span_explains_the_continuation(smollm2, tmp_path, capsys):
    result, table, _ = _attribute(tmp_path, capsys, TOWER, "--span", " Eiffel Tower")
    prompt = smollm2.to_tokens(TOWER)[0]
    n = prompt.numel()
    full = smollm2.to_tokens(TOWER + " Eiffel Tower")[0]
    assert torch.equal(result.tokens, full.cpu()) and result.target == n and full.numel() > n + 1
    with torch.no_grad():
        log_p = smollm2(full[None, :-1])[0].log_softmax(-1)
    expected = sum(float(log_p[n - 1 + j, full[n + j]]) for j in range(full.numel() - n))
    assert result.target_value == pytest.approx(expected, rel=1e-4)
    assert result.scores.shape == (n,) and bool(torch.isfinite(result.scores).all())
    assert result.gate is not None and float(result.gate.sum()) == pytest.approx(1.0, abs=1e-5)
    assert table.startswith("target span: Σ log P(' Eiffel Tower' | prompt)")
