"""End to end: ``heta-lens demo`` on 127.0.0.1 with the embedded SmolLM2, driven in Chromium.

The server is the real command in a subprocess (its own process group, always stopped by a
finalizer); a ``sitecustomize`` from ``tests/e2e/offline`` makes it refuse, and log, any
connection that leaves the machine. Playwright drives Debian's Chromium (headless, no sandbox,
background networking off) and the test fails on any request the page makes to another origin.
One test function, so that pytest-xdist never starts two servers (each loads the model).

``HETA_DEMO_SCREENSHOT=docs/img/demo.png`` also writes the screenshot there (the README's);
``HETA_DEMO_CONTRAST_SCREENSHOT=PATH`` the one of the contrast run.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
]
OFFLINE = Path(__file__).parent / "offline"
ROOT = Path(__file__).resolve().parents[2]
"""This checkout: first on the server's path, so it serves the code under test even where the
``heta-lens`` script belongs to an editable install of another checkout (a git worktree)."""
PROMPT = "The capital of France is"
START_TIMEOUT_S = 180.0
RUN_TIMEOUT_MS = 300_000  # the first run waits for the model (~15-35 s on 2 shared cores)
NUMBER = r"-?\d+(\.\d+)?(e[-+]?\d+)?"
# Records every progress label Gradio renders (it can flash by faster than a poll).
WATCH_PROGRESS = """() => {
  window.hetaProgress = [];
  new MutationObserver(() => {
    document.querySelectorAll('.progress-level').forEach(
      (e) => window.hetaProgress.push(e.textContent.trim()));
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""
MARK_STALE = """() => document
  .querySelectorAll('#heta-tokens .heta-tokens, #heta-message .heta-message')
  .forEach((e) => e.setAttribute('data-stale', ''))"""
FRESH_MESSAGE = "#heta-message .heta-message:not([data-stale])"
FRESH = f"#heta-tokens .heta-tokens:not([data-stale]) .heta-tok, {FRESH_MESSAGE}"
COLOURED = """(els) => els.filter((e) => {
  const c = getComputedStyle(e).backgroundColor;
  return c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent';
}).map((e) => getComputedStyle(e).backgroundColor)"""


@dataclass
class Server:
    url: str
    log: Path
    startup_s: float


@dataclass
class Tab:
    page: Page
    foreign: list[str] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, n: int = 4000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else "(no log)"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT (Gradio closes cleanly), then SIGKILL the server's own process group."""
    for sig, wait in ((signal.SIGINT, 15), (signal.SIGKILL, 15)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue


def _wait_until_up(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy for 127.*
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"heta-lens demo exited with {proc.returncode}:\n{_tail(log)}")
        try:
            with opener.open(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    pytest.fail(f"heta-lens demo did not answer within {START_TIMEOUT_S} s:\n{_tail(log)}")


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Server:
    log = tmp_path_factory.mktemp("demo") / "server.log"
    port = _free_port()
    exe = Path(sys.executable).with_name("heta-lens")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "heta_lens.cli"]
    command += ["demo", "--host", "127.0.0.1", "--port", str(port)]
    paths = [str(OFFLINE), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(paths),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }
    start = time.perf_counter()
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    request.addfinalizer(lambda: _stop(proc))
    url = f"http://127.0.0.1:{port}/"
    _wait_until_up(url, proc, log)
    return Server(url=url, log=log, startup_s=time.perf_counter() - start)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found; install it with: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def tab(browser: Browser, server: Server):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    opened = Tab(page=page)
    origin = server.url.rstrip("/")
    page.on(
        "request",
        lambda req: (
            None
            if req.url.startswith((origin, "data:", "blob:"))
            else opened.foreign.append(req.url)
        ),
    )
    page.goto(server.url)
    try:
        yield opened
    finally:
        context.close()


def _run(page: Page, *, expect_error: bool = False) -> float:
    """Click Attribute; wait for new coloured tokens or a new message. Returns seconds.

    What the previous run rendered is marked stale first, so only this run's output counts.
    """
    page.evaluate(MARK_STALE)
    start = time.perf_counter()
    page.locator("#heta-run").click()
    page.locator(FRESH).first.wait_for(timeout=RUN_TIMEOUT_MS)
    seconds = time.perf_counter() - start
    message = page.locator(FRESH_MESSAGE)
    if expect_error:
        shown = page.locator("#heta-message").inner_html()
        assert message.count() == 1, f"expected a message; #heta-message holds {shown!r}"
    else:
        assert message.count() == 0, f"the page reported: {message.first.inner_text()}"
    return seconds


def _coloured_tokens(page: Page) -> list[str]:
    return page.locator("#heta-tokens .heta-tok").evaluate_all(COLOURED)


def _choose_target(page: Page, label: str) -> None:
    page.locator("#heta-target input").click()
    page.get_by_role("option", name=label, exact=True).click(timeout=RUN_TIMEOUT_MS)


def _choose_method(page: Page, name: str) -> None:
    page.locator("#heta-method input").fill(name)
    page.get_by_role("option", name=re.compile(rf"^{name} · ")).click(timeout=RUN_TIMEOUT_MS)


def _type_target(page: Page, value: str) -> None:
    field_ = page.locator("#heta-target input")
    field_.fill(value)
    field_.press("Enter")


def _screenshot(page: Page, path: Path, *, env: str = "HETA_DEMO_SCREENSHOT") -> None:
    page.screenshot(path=str(path), full_page=True)
    extra = os.environ.get(env)
    if extra:
        Path(extra).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, extra)


def test_demo_in_chromium(server: Server, tab: Tab, tmp_path: Path, record_property) -> None:
    page = tab.page
    record_property("startup_seconds", round(server.startup_s, 1))

    # 1. The model's next token, preset fast: coloured tokens with values on hover.
    page.locator("#heta-text textarea").fill(PROMPT)
    expect(page.locator("#heta-preset input")).to_have_value("fast")
    page.evaluate(WATCH_PROGRESS)
    record_property("first_run_seconds", round(_run(page), 1))
    progress = page.evaluate("window.hetaProgress")
    assert any(re.search(r"loading|tokenising|attributing|HVP|masked", p) for p in progress)
    summary = page.locator("#heta-summary").inner_text()
    assert "predicted next token" in summary and "Paris" in summary, summary
    colours = _coloured_tokens(page)
    n_context = page.locator("#heta-tokens .heta-tok").count()
    assert n_context >= 5 and len(colours) == n_context
    assert any(c != "rgb(255, 255, 255)" for c in colours), colours
    top = page.locator("#heta-tokens .heta-tok").nth(n_context - 1)  # " is": never 0 here
    top.hover()
    title = top.get_attribute("title") or ""
    assert re.search(rf"^score = {NUMBER}$", title, re.M), title
    assert re.search(rf"^information = {NUMBER}$", title, re.M), title
    assert page.locator("#heta-target").is_visible()
    expect(page.locator("#heta-files")).to_contain_text(".html")
    expect(page.locator("#heta-files")).to_contain_text(".json")
    for cell in ("information", "·France", "·capital"):  # the breakdown table
        expect(page.locator("#heta-table")).to_contain_text(cell)
    _screenshot(page, tmp_path / "demo.png")

    # 2. A token of the text as the target, recoloured by the gate.
    _choose_target(page, "4: ·France")
    record_property("second_run_seconds", round(_run(page), 1))
    expect(page.locator("#heta-summary")).to_contain_text("at position 4", timeout=RUN_TIMEOUT_MS)
    assert len(_coloured_tokens(page)) == 4
    page.get_by_label("gate", exact=True).check()
    expect(page.locator("#heta-tokens .heta-legend")).to_contain_text("colour: gate")

    # 3. A contrast against a foil (empty answer: the greedy " Paris"), then its messages.
    page.get_by_label("contrast: answer vs a foil", exact=True).check()
    expect(page.locator("#heta-target")).to_be_hidden()
    foil = page.locator("#heta-foil").get_by_role("textbox")
    foil.fill(" London")
    record_property("contrast_run_seconds", round(_run(page), 1))
    summary = page.locator("#heta-summary").inner_text()
    heading = rf"contrast: logit\(' Paris'\) − logit\(' London'\) at pos \d+\s+f={NUMBER}"
    assert re.search(heading, summary) and "greedy next token" in summary, summary
    assert len(_coloured_tokens(page)) == n_context
    expect(page.locator("#heta-tokens .heta-target")).to_have_text("→ f")
    _screenshot(page, tmp_path / "demo-contrast.png", env="HETA_DEMO_CONTRAST_SCREENSHOT")
    for method, foil_text, message in [
        ("heta", " New York", "foil ' New York' tokenizes to 2 tokens"),
        ("attention_rollout", " London", "attention_rollout does not support contrast targets"),
    ]:
        _choose_method(page, method)
        foil.fill(foil_text)
        _run(page, expect_error=True)
        expect(page.locator("#heta-message")).to_contain_text(message, timeout=RUN_TIMEOUT_MS)
        expect(page.locator("#heta-tokens")).to_be_hidden()
    _choose_method(page, "heta")
    page.get_by_label("next token / a token of the text", exact=True).check()
    expect(page.locator("#heta-foil")).to_be_hidden()

    # 4. Bad input: a message in the page, no traceback, the old result hidden.
    for text, target, message in [
        ("", None, "empty text"),
        (PROMPT, "99", "out of range"),
        ("word " * 300, None, "text too long"),
    ]:
        page.locator("#heta-text textarea").fill(text)
        if target is not None:
            _type_target(page, target)
        _run(page, expect_error=True)
        expect(page.locator("#heta-message")).to_contain_text(message, timeout=RUN_TIMEOUT_MS)
        expect(page.locator("#heta-tokens")).to_be_hidden()
        body = page.locator("body").inner_text()
        assert "Traceback" not in body and 'File "' not in body
        if target is not None:
            _choose_target(page, "next token (the model's greedy prediction)")
    page.screenshot(path=str(tmp_path / "demo-error.png"), full_page=True)

    assert tab.foreign == [], f"the page requested other origins: {tab.foreign}"
    log = server.log.read_text(errors="replace")
    assert "heta-e2e: refused" not in log, _tail(server.log)
    assert "Traceback" not in log, _tail(server.log)
