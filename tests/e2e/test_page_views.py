"""The HTML page's tokens/words switch, clicked in headless Chromium (a tiny model's page).

The page is a local file with inline JavaScript only; the test fails on any request it makes.
"""

from pathlib import Path

import pytest
import torch
from playwright.sync_api import expect, sync_playwright

import heta_lens as H
from heta_lens import viz
from heta_lens.testing import tiny_bridge

pytestmark = [pytest.mark.e2e, pytest.mark.bridge]

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--no-first-run"]
BACKGROUND = "(els) => els.map((e) => getComputedStyle(e).backgroundColor)"


def test_words_button_shows_the_summed_view_and_recolours_it(tmp_path):
    model = tiny_bridge()
    result = H.attribute(model, "w5 w7 w3 w9 w31 w6 w33")
    path = tmp_path / "page.html"
    viz.save_html(result, path, aggregate="word", tokenizer=model.tokenizer)
    word_agg = result.aggregate("word", tokenizer=model.tokenizer)
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found; install it with: apt-get install -y chromium")
    foreign: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page()
            page.on(
                "request", lambda r: None if r.url.startswith("file:") else foreign.append(r.url)
            )
            page.goto(path.as_uri())
            tokens, groups = (
                page.locator('[data-pane="token"]'),
                page.locator('[data-pane="group"]'),
            )
            expect(tokens).to_be_visible()
            expect(groups).to_be_hidden()
            page.click('button[data-view="group"]')
            expect(groups).to_be_visible()
            expect(tokens).to_be_hidden()
            cells = page.locator(".tok.grp")
            assert cells.count() == len(word_agg.groups)
            page.click('button[data-comp="gate"]')
            colours = cells.evaluate_all(BACKGROUND)
            gate = word_agg.components["gate"]
            strongest = int(gate.abs().argmax())
            assert colours[strongest] == "rgb(220, 38, 38)"  # the largest summed gate: full red
            shown = float(page.locator(".max").text_content() or "nan")
            assert shown == pytest.approx(float(gate.abs().max()), rel=1e-3)
            page.click('button[data-view="token"]')
            expect(tokens).to_be_visible()
            shown = float(page.locator(".max").text_content() or "nan")
            assert shown == pytest.approx(float(torch.as_tensor(result.gate).abs().max()), rel=1e-3)
        finally:
            browser.close()
    assert foreign == []
