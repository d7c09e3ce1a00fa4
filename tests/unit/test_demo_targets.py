"""The demo's contrast and span targets (heta_lens.demo.target_form, core, render, the page's
handler) on a tiny model: same scores as the library, f checked against explicit forwards,
clean messages for bad input and for methods that take tokens only, model left untouched."""

import doctest
import html
import re

import pytest
import torch

import heta_lens as H
from heta_lens import viz
from heta_lens.demo import TargetForm, build_request, render_tokens, run_method, write_downloads
from heta_lens.demo import target_form as form_module
from heta_lens.demo.render import breakdown, summary_markdown
from heta_lens.testing import tiny_bridge, tiny_pair

pytestmark = pytest.mark.bridge
TEXT = "w5 w7 w3"  # the bridge prepends BOS (w1): 4 tokens
IDS = [1, 5, 7, 3]
CONTRAST = TargetForm(kind="contrast", answer=" w4", foil=" w8")
SPAN = TargetForm(kind="span", span=" w9 w6")  # single-digit words: one token each
TOKEN_ONLY = ("attention_rollout", "last_layer_attention", "contextcite", "reagent")
TARGET = re.compile(r'<span class="heta-target" title="([^"]*)">([^<]*)</span>')


@pytest.fixture(scope="module")
def model():
    return tiny_bridge()


def _snapshot(model) -> dict:
    return {
        "hooks": sum(
            len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
            for m in model.modules()
        ),
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "training": [m.training for m in model.modules()],
        "params": [p.detach().clone() for p in model.parameters()],
        "grad_mode": torch.is_grad_enabled(),
        "rng": torch.get_rng_state(),
    }


def _assert_untouched(model, before: dict) -> None:
    after = _snapshot(model)
    for key in ("hooks", "requires_grad", "training", "grad_mode"):
        assert after[key] == before[key], key
    assert torch.equal(after["rng"], before["rng"])
    assert all(torch.equal(a, b) for a, b in zip(after["params"], before["params"], strict=True))


def _logits(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([ids]))[0].double()


# ----------------------------------------------------------------------------- same as library
@pytest.mark.parametrize("method", ["heta", "saliency", "occlusion"])
def test_contrast_run_equals_the_library_and_f_a_forward(model, method):
    request = build_request(model, TEXT, CONTRAST, max_tokens=16)
    assert request.tokens.tolist() == IDS and request.context == 4 and not request.generated
    assert request.kind == "contrast"
    got = run_method(model, request, method=method, preset="fast")
    spec = H.get_method(method)
    config = H.preset("fast") if spec.heta_family else None
    direct = spec(model, TEXT, target=H.Contrast(" w4", " w8"), config=config)
    torch.testing.assert_close(got.scores, direct.scores, rtol=0, atol=0)
    assert (got.target_kind, got.target_description) == ("contrast", direct.target_description)
    assert got.target_description == "logit('w4') − logit('w8') at pos 3"
    last = _logits(model, IDS)[-1]
    # f against a plain float64 forward: measured difference 1.4e-17 (round-off)
    assert got.target_value == pytest.approx(float(last[4] - last[8]), rel=1e-12, abs=1e-12)


def test_empty_answer_is_the_greedy_next_token(model):
    request = build_request(model, TEXT, TargetForm(kind="contrast", foil=" w8"), max_tokens=16)
    greedy = int(_logits(model, IDS)[-1].argmax())
    assert request.generated and request.target == H.Contrast(greedy, " w8")
    got = run_method(model, request, method="heta", preset="fast")
    direct = H.attribute(model, TEXT, target=H.Contrast(greedy, " w8"), config=H.preset("fast"))
    torch.testing.assert_close(got.scores, direct.scores, rtol=0, atol=0)
    text = summary_markdown(got, preset="fast", seconds=0.5, generated=request.generated)
    assert "answer: the model's greedy next token" in text


def test_span_run_equals_the_library_and_f_a_forward(model):
    request = build_request(model, TEXT, SPAN, max_tokens=16)
    assert request.tokens.tolist() == IDS and request.target == H.Span((9, 6))
    assert request.kind == "span" and request.context == 4
    got = run_method(model, request, method="heta", preset="fast")
    direct = H.attribute(model, TEXT, target=H.Span(" w9 w6"), config=H.preset("fast"))
    torch.testing.assert_close(got.scores, direct.scores, rtol=0, atol=0)
    assert got.tokens.tolist() == [*IDS, 9, 6] and got.target == 4
    log_probs = _logits(model, [*IDS, 9, 6]).log_softmax(-1)
    f = float(log_probs[3, 9] + log_probs[4, 6])  # Σ_j log P(y_j | prompt, y_<j)
    assert got.target_value == pytest.approx(f, rel=1e-12, abs=1e-12)


@pytest.mark.hooked
def test_contrast_on_a_hooked_transformer():
    hooked, _ = tiny_pair()
    request = build_request(hooked, TEXT, CONTRAST, max_tokens=16)
    got = run_method(hooked, request, method="heta", preset="fast")
    direct = H.attribute(hooked, TEXT, target=H.Contrast(" w4", " w8"), config=H.preset("fast"))
    torch.testing.assert_close(got.scores, direct.scores, rtol=0, atol=0)
    assert got.target_kind == "contrast"


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("form", "max_tokens", "message"),
    [
        (TargetForm(kind="contrast", answer=" w4", foil=" w8 w9"), 16,
         r"Contrast foil ' w8 w9' tokenizes to 2 tokens \['w8', 'w9'\]; it must be exactly one"),
        (TargetForm(kind="contrast", answer=" w4 w5", foil=" w8"), 16,
         "Contrast answer ' w4 w5' tokenizes to 2 tokens"),
        (TargetForm(kind="contrast", answer=" w4"), 16, "a contrast needs a foil"),
        (CONTRAST, 3, "text too long: 4 tokens; the demo accepts at most 3"),
        (TargetForm(kind="span"), 16, "a span target needs its text"),
        (TargetForm(kind="span", span="w9"), 16, "a token merges across the boundary"),
        (SPAN, 5, "text too long: 6 tokens with the span; the demo accepts at most 5"),
    ],
)  # fmt: skip
def test_bad_target_fields_give_the_message_and_leave_the_model(model, form, max_tokens, message):
    model(torch.tensor([IDS]))  # a bridge installs its own lazy hooks on the first forward
    before = _snapshot(model)
    with pytest.raises(ValueError, match=message):
        build_request(model, TEXT, form, max_tokens=max_tokens)
    _assert_untouched(model, before)


def test_unknown_kind_and_empty_text():
    with pytest.raises(ValueError, match="target kind must be one of token, contrast, span"):
        TargetForm(kind="metric")
    with pytest.raises(ValueError, match="resolve builds contrast and span targets"):
        form_module.resolve(torch.nn.Linear(1, 1), TEXT, TargetForm(), limit=16)


@pytest.mark.parametrize("kind", ["contrast", "span"])
def test_empty_text_is_refused_for_every_kind(model, kind):
    with pytest.raises(ValueError, match="empty text"):
        build_request(model, " ", TargetForm(kind=kind, foil=" w8", span=" w9"), max_tokens=16)


@pytest.mark.parametrize("form", [CONTRAST, SPAN], ids=["contrast", "span"])
@pytest.mark.parametrize("method", TOKEN_ONLY)
def test_token_only_methods_refuse_with_the_kind(model, form, method):
    request = build_request(model, TEXT, form, max_tokens=16)
    before = _snapshot(model)
    with pytest.raises(ValueError, match=f"{method} does not support {form.kind} targets"):
        run_method(model, request, method=method, preset="fast")
    _assert_untouched(model, before)


def test_runs_leave_the_model_untouched(model):
    model(torch.tensor([IDS]))
    before = _snapshot(model)
    for form in (CONTRAST, SPAN, TargetForm(kind="contrast", foil=" w8")):
        request = build_request(model, TEXT, form, max_tokens=16)
        run_method(model, request, method="heta", preset=None)
    _assert_untouched(model, before)


# ----------------------------------------------------------------------------- rendering
# the word-level tokenizer's token strings carry no spaces: the span's cell is "w9w6"
@pytest.mark.parametrize(("form", "cell"), [(CONTRAST, "→ f"), (SPAN, "w9w6")])
def test_page_names_the_kind_f_and_its_value(model, form, cell, tmp_path):
    result = run_method(model, build_request(model, TEXT, form, max_tokens=16), method="heta",
                        preset="fast")  # fmt: skip
    kind, value = form.kind, f"f={result.target_value:.4g}"
    [(title, text)] = TARGET.findall(render_tokens(result))
    title, text = html.unescape(title), html.unescape(text)
    assert text == cell
    assert title == f"{kind}: {result.target_description}  {value}"
    assert render_tokens(result).count('class="heta-tok"') == 4
    summary = summary_markdown(result, preset="fast", seconds=0.5, generated=False)
    assert f"`{kind}: {result.target_description}  {value}`" in summary
    assert "from 4 context tokens" in summary and "answer:" not in summary
    assert [row[1] for row in breakdown(result).rows] == sorted(
        range(4), key=lambda p: -float(result.scores[p])
    )
    page, _ = write_downloads(result, tmp_path)
    assert page.name == f"heta-lens-heta-{kind}4.html"
    [back] = viz.results_from_html(page.read_text(encoding="utf-8"))
    assert (back.target_kind, back.target_value) == (kind, pytest.approx(result.target_value))


# ----------------------------------------------------------------------------- the page
def _handler(app, name: str):
    [fn] = [f.fn for f in app.fns.values() if f.name == name]
    return fn


@pytest.fixture(scope="module")
def page(model):
    from heta_lens.demo import ModelCache
    from heta_lens.demo.app import build_app

    cache = ModelCache(lambda name, *, backend: model)  # noqa: ARG005
    return build_app(cache=cache, models=["tiny"], backend="bridge", max_tokens=16)


def _click(page, *, kind: str, method: str = "heta", answer="", foil="", span="") -> tuple:
    run = _handler(page, "run")
    fields = (kind, "next", answer, foil, span)
    return run(TEXT, "tiny", *fields, method, "fast", progress=lambda *_, **__: None)


def test_page_shows_only_the_fields_of_the_kind(page):
    show = _handler(page, "show_fields")
    for kind, visible in [("token", (1, 0, 0)), ("contrast", (0, 1, 0)), ("span", (0, 0, 1))]:
        assert tuple(int(c.visible) for c in show(kind)) == visible


def test_page_contrast_run_and_its_messages(page):
    message, results, summary, *_ = _click(page, kind="contrast", answer=" w4", foil=" w8")
    assert message == "" and results.visible
    assert "`contrast: logit('w4') − logit('w8') at pos 3  f=" in summary
    for kind, method, foil, expected in [
        ("contrast", "heta", " w8 w9", "tokenizes to 2 tokens ['w8', 'w9']"),
        ("contrast", "attention_rollout", " w8", "attention_rollout does not support contrast"),
        ("span", "reagent", "", "reagent does not support span targets"),
    ]:
        message, results, *_ = _click(page, kind=kind, method=method, foil=foil, span=" w9")
        assert 'class="heta-message" role="alert"' in message and not results.visible
        assert html.escape(expected) in message
        assert "Traceback" not in message and "unexpected error" not in message


def test_target_form_docstring_examples_run():
    result = doctest.testmod(form_module)
    assert result.attempted > 0 and result.failed == 0
