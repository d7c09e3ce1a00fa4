"""The demo's pure logic (heta_lens.demo.core / .render) and its CLI entry, on a tiny model."""

import doctest
import html
import importlib
import json
import re
from pathlib import Path

import pytest
import torch

import heta_lens as H
from heta_lens import cli, cli_demo, viz
from heta_lens.demo import (
    MAX_CHARS,
    NEXT_TOKEN,
    ModelCache,
    breakdown,
    build_request,
    installed_models,
    message_html,
    method_config,
    parse_target,
    render_tokens,
    run_method,
    target_choices,
    write_downloads,
)
from heta_lens.demo.render import summary_markdown
from heta_lens.result import from_dict
from heta_lens.testing import tiny_bridge

pytestmark = pytest.mark.bridge
TEXT = "w5 w7 w3 w9"  # the bridge prepends BOS (w1): 5 tokens
SPAN = re.compile(r'<span class="heta-tok" data-pos="(\d+)" title="([^"]*)" style="([^"]*)">')


@pytest.fixture(scope="module")
def model():
    return tiny_bridge()


@pytest.fixture(scope="module")
def heta_result(model) -> H.HetaResult:
    request = build_request(model, TEXT, "4", max_tokens=16)
    result = run_method(model, request, method="heta", preset="fast")
    assert isinstance(result, H.HetaResult)
    return result


def _plain_result(strings: tuple[str, ...]) -> H.AttributionResult:
    return H.AttributionResult(
        tokens=torch.arange(len(strings)),
        target=len(strings) - 1,
        scores=torch.linspace(-1.0, 2.0, len(strings) - 1, dtype=torch.float64),
        method="toy",
        token_strings=strings,
        signed=True,
    )


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("text", "target", "max_tokens", "message"),
    [
        ("", NEXT_TOKEN, 16, "empty text"),
        ("   \n", "2", 16, "empty text"),
        ("w5 " * (MAX_CHARS // 3 + 1), NEXT_TOKEN, 16, f"at most {MAX_CHARS}"),
        (TEXT, NEXT_TOKEN, 5, r"5 tokens plus the predicted one; the demo accepts at most 5"),
        (TEXT, "2", 4, "text too long: 5 tokens"),
        (" ".join(["w5"] * 20), "3", 128, "at most 16"),  # the model's n_ctx caps max_tokens
        (TEXT, "9", 16, r"target 9 is out of range for 5 tokens; pick a token .*1 to 4"),
        (TEXT, "-6", 16, "out of range"),
        (TEXT, "0", 16, "no context"),
        (TEXT, "Paris", 16, "'next token' or a token position"),
    ],
)
def test_bad_input_gives_a_message(model, text, target, max_tokens, message):
    with pytest.raises(ValueError, match=message):
        build_request(model, text, target, max_tokens=max_tokens)


def test_next_token_appends_the_greedy_prediction(model):
    request = build_request(model, TEXT, NEXT_TOKEN, max_tokens=16)
    prompt = model.to_tokens(TEXT)[0]
    expected = int(model(prompt[None])[0, -1].argmax())
    assert request.generated
    assert request.target == prompt.numel() == request.tokens.numel() - 1
    assert torch.equal(request.tokens[:-1], prompt)
    assert int(request.tokens[-1]) == expected


@pytest.mark.parametrize(("choice", "index"), [("3", 3), ("3: w3", 3), (3, 3), ("-1", 4)])
def test_token_of_the_text_as_target(model, choice, index):
    request = build_request(model, TEXT, choice, max_tokens=16)
    assert not request.generated
    assert request.target == index
    assert torch.equal(request.tokens, model.to_tokens(TEXT)[0])


@pytest.mark.parametrize(
    ("choice", "expected"),
    [(None, None), ("", None), (NEXT_TOKEN, None), ("12", 12), (" 7: ·Paris", 7), (-2, -2)],
)
def test_parse_target(choice, expected):
    assert parse_target(choice) == expected


def test_target_choices_list_every_predictable_token(model):
    choices = target_choices(model, TEXT, max_tokens=16)
    assert choices[0][1] == NEXT_TOKEN
    assert choices[1:] == [("1: w5", "1"), ("2: w7", "2"), ("3: w3", "3"), ("4: w9", "4")]
    assert [value for _, value in target_choices(model, "", max_tokens=16)] == [NEXT_TOKEN]
    assert len(target_choices(model, TEXT, max_tokens=3)) == 3  # next, 1, 2


# ----------------------------------------------------------------------------- methods
def test_preset_replaces_the_estimator_and_keeps_the_ablation():
    fast = method_config("heta", "fast")
    assert fast.curvature == H.RowBlock(n_probes=8)
    kl_only = method_config("heta_kl_only", "fast")
    assert not kl_only.use_curvature and kl_only.curvature == H.RowBlock(n_probes=8)
    literal = method_config("heta_literal", "fast")
    assert literal.normalization == H.HetaConfig.literal().normalization
    assert method_config("heta", None) == H.get_method("heta").default_config
    assert method_config("saliency", "fast") == H.get_method("saliency").default_config
    with pytest.raises(ValueError, match="unknown preset 'nope'; valid: full"):
        method_config("heta", "nope")
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        method_config("nope", "fast")


def test_run_method_matches_the_library(model, heta_result):
    direct = H.attribute(model, model.to_tokens(TEXT)[0], target=4, config=H.preset("fast"))
    assert heta_result.method == "heta"
    torch.testing.assert_close(heta_result.scores, direct.scores, rtol=0, atol=0)
    request = build_request(model, TEXT, "4", max_tokens=16)
    baseline = run_method(model, request, method="saliency", preset="fast")
    assert baseline.method == "saliency" and not isinstance(baseline, H.HetaResult)


# ----------------------------------------------------------------------------- rendering
def test_one_coloured_span_per_context_token_with_its_values(heta_result):
    page = render_tokens(heta_result)
    spans = SPAN.findall(page)
    assert [int(pos) for pos, _, _ in spans] == list(range(heta_result.target))
    scale = float(heta_result.scores.abs().max())
    for pos, title, style in spans:
        tip = html.unescape(title)
        score = float(heta_result.scores[int(pos)])
        assert f"score = {score:.4g}" in tip
        for name in ("gate", "curvature", "information"):
            assert re.search(rf"^{name} = -?[\d.]+(e[-+]\d+)?$", tip, re.M), (name, tip)
        assert style.startswith("background-color:rgb(")
        if score == scale:
            assert "rgb(220,38,38)" in style  # the largest score is full red
    assert page.count('class="heta-target"') == 1
    assert "hover a token" in page


def test_colour_follows_the_selected_component(heta_result):
    by_score = [style for _, _, style in SPAN.findall(render_tokens(heta_result))]
    by_gate = [style for _, _, style in SPAN.findall(render_tokens(heta_result, component="gate"))]
    assert by_score != by_gate
    fallback = render_tokens(heta_result, component="not-a-component")
    assert fallback == render_tokens(heta_result)


def test_baseline_rendering_is_signed_and_escaped():
    result = _plain_result(("<b>", " the", "a\nb", '"q"', "</script>", "end"))
    page = render_tokens(result)
    spans = SPAN.findall(page)
    assert len(spans) == 5
    assert "rgb(146,177,245)" in spans[0][2]  # -1 of max |2|: half-way to blue
    assert "rgb(220,38,38)" in spans[4][2]  # 2, the largest magnitude: full red
    assert "<b>" not in page and "</script>" not in page
    assert "&lt;b&gt;" in page and "·the" in page and "a⏎b" in page
    assert all("gate" not in html.unescape(title) for _, title, _ in spans)


def test_breakdown_ranks_tokens_by_score(heta_result):
    table = breakdown(heta_result)
    assert table.headers == ("rank", "pos", "token", "score", "gate", "curvature", "information")
    assert len(table.rows) == heta_result.target
    scores = [row[3] for row in table.rows]
    assert scores == sorted(scores, reverse=True)
    assert [row[0] for row in table.rows] == list(range(1, heta_result.target + 1))
    top_pos = int(heta_result.scores.argmax())
    assert table.rows[0][1] == top_pos
    plain = breakdown(_plain_result(("a", "b", "c")))
    assert plain.headers == ("rank", "pos", "token", "score")
    assert [row[1] for row in plain.rows] == [1, 0]


def test_summary_and_message(heta_result):
    text = summary_markdown(heta_result, preset="fast", seconds=1.25, generated=True)
    assert "predicted next token" in text and "`fast`" in text and "1.2 s" in text
    assert "position 4" in text
    box = message_html("empty text: <type>")
    assert 'role="alert"' in box and "&lt;type&gt;" in box and "Traceback" not in box


# ----------------------------------------------------------------------------- downloads
def test_downloads_parse_back(heta_result, tmp_path: Path):
    page_path, json_path = write_downloads(heta_result, tmp_path / "out")
    assert page_path.suffix == ".html" and json_path.suffix == ".json"
    (from_page,) = viz.results_from_html(page_path.read_text(encoding="utf-8"))
    (data,) = json.loads(json_path.read_text(encoding="utf-8"))
    from_json = from_dict(data)
    for back in (from_page, from_json):
        assert isinstance(back, H.HetaResult)
        assert back.target == heta_result.target and back.method == "heta"
        torch.testing.assert_close(back.scores, heta_result.scores.double())
        assert back.config == heta_result.config


# ----------------------------------------------------------------------------- models, CLI
def test_model_cache_loads_each_model_once():
    calls: list[tuple[str, str]] = []

    def loader(name: str, *, backend: str) -> torch.nn.Module:
        calls.append((name, backend))
        return torch.nn.Linear(1, 1)

    cache = ModelCache(loader)
    assert not cache.is_loaded("a", "bridge")
    first = cache.get("a", "bridge")
    assert cache.get("a", "bridge") is first and cache.is_loaded("a", "bridge")
    cache.get("a", "hooked")
    assert calls == [("a", "bridge"), ("a", "hooked")]


def test_installed_models_put_the_default_first():
    names = installed_models("/models/x.gguf")
    assert names[0] == "/models/x.gguf"
    installed = {spec.name for spec in H.list_models() if spec.installed()}
    assert set(names[1:]) == installed
    assert installed_models("smollm2-135m").count("smollm2-135m") == 1


def test_demo_without_gradio_names_the_extra(monkeypatch, capsys):
    monkeypatch.setattr(cli_demo, "has_gradio", lambda: False)
    assert cli.main(["demo", "--port", "0"]) == 2
    assert "pip install 'heta-lens[demo]'" in capsys.readouterr().err


def test_demo_rejects_a_tiny_token_limit(capsys):
    assert cli.main(["demo", "--max-tokens", "1"]) == 2
    assert "--max-tokens must be at least 2" in capsys.readouterr().err


def test_app_builds_without_launching(model):
    from heta_lens.demo.app import build_app  # gradio: the demo extra, in both test venvs

    cache = ModelCache(lambda name, *, backend: model)  # noqa: ARG005
    app = build_app(cache=cache, models=["tiny"], backend="bridge", max_tokens=16)
    assert type(app).__name__ == "Blocks"


@pytest.mark.parametrize("name", ["heta_lens.demo.core", "heta_lens.demo.render"])
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
