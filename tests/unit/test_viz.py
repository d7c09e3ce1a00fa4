import dataclasses
import html
import importlib.util
import json
import math
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from types import ModuleType

import pytest
import torch

import heta_lens as H
from heta_lens import viz
from heta_lens.testing import tiny_bridge

ROOT = Path(__file__).resolve().parents[2]
TOKENS = torch.tensor([1, 5, 7, 3, 9, 11])
TRICKY = ("<b>", " the", "a\nb", "&amp;", '"q" \'s', "</script>")


def _screenshot_script() -> ModuleType:
    path = ROOT / "scripts" / "screenshot_html.py"
    spec = importlib.util.spec_from_file_location("screenshot_html", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated() -> list[H.HetaResult]:
    """The --generate workflow: successive targets over one growing sequence."""
    model = tiny_bridge()
    config = H.HetaConfig.flat(n_probes=2)
    return [H.attribute(model, TOKENS, target=t, config=config) for t in (3, 4, 5)]


@pytest.fixture(scope="module")
def kl_only() -> H.HetaResult:
    return H.attribute(tiny_bridge(), TOKENS, config=H.HetaConfig.ablation("kl_only"))


def _plain_result() -> H.AttributionResult:
    """A baseline-style result: scores only, signed, no log-prob (NaN)."""
    return H.AttributionResult(
        tokens=TOKENS,
        target=5,
        scores=torch.tensor([0.5, -1.0, 0.25, 2.0, 0.0], dtype=torch.float64),
        method="toy",
        token_strings=TRICKY,
        signed=True,
    )


def _embedded(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="heta-lens-data">(.*?)</script>', page)
    assert match is not None

    def no_constants(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    return json.loads(match.group(1), parse_constant=no_constants)


def _circuitsvis_props(rendered) -> dict:
    src = rendered.cdn_src
    start = src.index("{", src.index("ColoredTokensMulti,"))
    props, _ = json.JSONDecoder().raw_decode(src, start)
    return props


def _assert_self_contained(page: str) -> None:
    lowered = page.lower()
    for needle in ("http://", "https://", "<script src", "<link", "src=", "url(", "@import"):
        assert needle not in lowered, needle
    assert lowered.count("<script") == 2  # the JSON data and the inline switcher


def test_visible_token():
    assert viz.visible_token(" the\n") == "·the⏎"
    assert viz.visible_token("\ta\r\x00") == "⇥a␍␀"
    assert viz.visible_token("") == "∅"


# ---- (a) the self-contained page ----------------------------------------------------------


def test_html_is_self_contained_and_escapes_tokens():
    result = _plain_result()
    page = viz.to_html(result)
    _assert_self_contained(page)
    for token in result.str_tokens():
        assert f">{html.escape(viz.visible_token(token))}</span>" in page
    assert "<b>" not in page and "a\nb" not in page
    assert page.count("</script>") == 2  # the "</script>" token cannot close the data block
    assert '<span class="tok target"' in page and "&lt;/script&gt;</span>" in page
    assert "p = n/a" in page  # no target log-prob
    assert "background:rgb(146,177,245)" in page  # -1.0 of max |2.0|: half-way to blue
    assert "<button" in page and "gate" not in re.findall(r"data-comp=\"(\w+)\"", page)


@pytest.mark.bridge
def test_embedded_json_round_trips(generated):
    result = generated[-1]
    page = viz.to_html(result)
    _assert_self_contained(page)
    data = _embedded(page)
    assert data["results"][0]["scores"] == result.scores.tolist()
    assert data["results"][0]["gate"] == result.gate.tolist()
    (back,) = viz.results_from_html(page)
    assert isinstance(back, H.HetaResult)
    torch.testing.assert_close(back.scores, result.scores, rtol=0, atol=0)
    assert back.target == result.target and back.config == result.config
    plain = viz.results_from_html(viz.to_html(_plain_result()))[0]
    assert plain.str_tokens() == list(TRICKY[:5]) and math.isnan(plain.target_log_prob)


@pytest.mark.bridge
def test_html_title_switcher_tooltip_and_table(generated):
    result = generated[-1]
    page = viz.to_html(result)
    p = torch.tensor(result.target_log_prob).exp().item()
    assert '<span class="tgt">w11</span> at position 5' in page
    assert f"p = {p:.4g}" in page
    assert re.findall(r'data-comp="(\w+)"', page) == list(viz.DEFAULT_COMPONENTS)
    assert result.curvature is not None
    top_pos = int(result.scores.argmax())
    tip = f"pos {top_pos}\nscore = {float(result.scores[top_pos]):.4g}\n"
    assert f'title="{tip}gate = {float(result.gate[top_pos]):.4g}\ncurvature = ' in page
    rows = re.findall(r"<tr><td>(\d+)</td><td>(\d+)</td>", page)
    assert [int(pos) for _, pos in rows] == [pos for pos, _, _ in result.top(10)]
    assert int(rows[0][1]) == top_pos
    assert len(re.findall(r"<tr><td>", viz.to_html(result, top_k=2))) == 2
    # Initial colours: the top token is saturated red, a zero score is white.
    assert re.search(r'data-score="1\.0000"[^>]* style="background:rgb\(220,38,38\)', page)
    assert re.search(r'data-score="0\.0000"[^>]* style="background:rgb\(255,255,255\)', page)


@pytest.mark.bridge
def test_ablated_components_are_left_out(kl_only):
    page = viz.to_html(kl_only)
    assert re.findall(r'data-comp="(\w+)"', page) == ["score", "gate", "information"]
    _, values, labels = viz.colored_tokens_data(kl_only)
    assert labels == ["score", "gate", "information"] and values.shape == (6, 3)


def test_unknown_component_and_empty_input_raise():
    with pytest.raises(ValueError, match="valid: score"):
        viz.to_html(_plain_result(), components=("score", "nope"))
    with pytest.raises(ValueError, match="no results"):
        viz.to_html([])
    with pytest.raises(ValueError, match="none of the components"):
        viz.to_html(_plain_result(), components=("gate",))


# ---- (b) circuitsvis ----------------------------------------------------------------------


@pytest.mark.bridge
def test_colored_tokens_values_match_the_components(generated):
    from circuitsvis.utils.render import RenderedHTML

    result = generated[-1]
    rendered = viz.colored_tokens(result)
    assert isinstance(rendered, RenderedHTML)
    props = _circuitsvis_props(rendered)
    assert props["tokens"] == ["w1", "w5", "w7", "w3", "w9", viz.TARGET_MARK + "w11"]
    assert props["labels"] == list(viz.DEFAULT_COMPONENTS)
    values = torch.tensor(props["values"], dtype=torch.float64)
    assert result.curvature is not None and result.information is not None
    expected = torch.stack([result.scores, result.gate, result.curvature, result.information], 1)
    torch.testing.assert_close(values[:-1], expected, rtol=0, atol=0)
    assert values[-1].eq(0).all()  # the target row
    assert _circuitsvis_props(viz.colored_tokens(result, components=("gate",)))["labels"] == [
        "gate"
    ]


def test_colored_tokens_without_circuitsvis_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "circuitsvis", None)
    monkeypatch.setitem(sys.modules, "circuitsvis.tokens", None)
    with pytest.raises(ImportError, match=r"heta-lens\[viz\]"):
        viz.colored_tokens(_plain_result())


def test_core_does_not_import_circuitsvis():
    code = "import sys, heta_lens, heta_lens.viz; sys.exit('circuitsvis' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ---- (c) lists of results (--generate) ----------------------------------------------------


@pytest.mark.bridge
def test_colored_tokens_combines_a_generated_sequence(generated):
    tokens, values, labels = viz.colored_tokens_data(generated, components=("score", "gate"))
    mark = viz.TARGET_MARK
    assert tokens == ["w1", "w5", "w7", mark + "w3", mark + "w9", mark + "w11"]
    assert labels == [
        f"{c} {mark}{t}" for t in ("w3@3", "w9@4", "w11@5") for c in ("score", "gate")
    ]
    assert values.shape == (6, 6)
    for i, r in enumerate(generated):
        torch.testing.assert_close(values[: r.target, 2 * i], r.scores, rtol=0, atol=0)
        torch.testing.assert_close(values[: r.target, 2 * i + 1], r.gate, rtol=0, atol=0)
        assert values[r.target :, 2 * i : 2 * i + 2].eq(0).all()
    props = _circuitsvis_props(viz.colored_tokens(generated))
    assert len(props["labels"]) == 12 and props["tokens"] == tokens


@pytest.mark.bridge
def test_results_over_different_sequences_are_refused(generated):
    other = dataclasses.replace(generated[0], tokens=torch.tensor([1, 6, 7, 3, 9, 11]))
    with pytest.raises(ValueError, match="different sequences"):
        viz.colored_tokens_data([generated[-1], other])


@pytest.mark.bridge
def test_html_has_one_section_per_target(generated):
    page = viz.to_html(generated)
    _assert_self_contained(page)
    assert page.count('<section class="heta">') == 3
    assert re.findall(r'<span class="tgt">(\w+)</span> at position (\d)', page) == [
        ("w3", "3"),
        ("w9", "4"),
        ("w11", "5"),
    ]
    assert page.count('class="tok target"') == 3
    assert [d["target"] for d in _embedded(page)["results"]] == [3, 4, 5]
    assert "3 heta attributions" in page


# ---- (d) rendering in headless Chromium ---------------------------------------------------


def _encode_png(width: int, height: int, rgb: bytes) -> bytes:
    """A test-only PNG encoder cycling through all five filter types (one per row)."""

    def paeth(a: int, b: int, c: int) -> int:
        p = a + b - c
        best = min((abs(p - a), 0, a), (abs(p - b), 1, b), (abs(p - c), 2, c))
        return best[2]

    stride, raw, prev = 3 * width, bytearray(), bytes(3 * width)
    for y in range(height):
        line, kind = rgb[y * stride : (y + 1) * stride], y % 5
        raw.append(kind)
        for i, x in enumerate(line):
            a, b, c = (line[i - 3] if i >= 3 else 0), prev[i], (prev[i - 3] if i >= 3 else 0)
            pred = (0, a, b, (a + b) // 2, paeth(a, b, c))[kind]
            raw.append((x - pred) % 256)
        prev = line

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    ihdr, idat = chunk(b"IHDR", header), chunk(b"IDAT", zlib.compress(bytes(raw)))
    return b"\x89PNG\r\n\x1a\n" + ihdr + idat + chunk(b"IEND", b"")


def test_png_decoder_undoes_every_filter():
    script = _screenshot_script()
    gen = torch.Generator().manual_seed(0)
    rgb = bytes(torch.randint(0, 256, (7 * 11 * 3,), generator=gen, dtype=torch.uint8).tolist())
    assert script.decode_png_rgb(_encode_png(11, 7, rgb)) == (11, 7, rgb)


@pytest.mark.bridge
def test_page_renders_coloured_in_headless_chromium(generated, tmp_path):
    script = _screenshot_script()
    if not script.CHROMIUM.exists():
        pytest.fail(
            f"{script.CHROMIUM} is missing: the viz tests render pages in headless Chromium; "
            f"{script.INSTALL_HINT}"
        )
    page = viz.save_html(generated, tmp_path / "page.html")
    png = script.screenshot(page, tmp_path / "page.png")
    count = script.count_colored_pixels(png)
    assert count >= 2000, f"only {count} coloured pixels in the screenshot"
    assert script.decode_png_rgb(png.read_bytes()) == script.read_png_rgb(png)
    # Control: the same page with every colour stripped shows (almost) none.
    grey = re.sub(r"rgb\(\d+,\d+,\d+\)", "rgb(240,240,240)", page.read_text(encoding="utf-8"))
    (tmp_path / "grey.html").write_text(grey, encoding="utf-8")
    grey_png = script.screenshot(tmp_path / "grey.html", tmp_path / "grey.png")
    assert script.count_colored_pixels(grey_png) < 100
    assert script.main([str(page), str(tmp_path / "cli.png")]) == 0
