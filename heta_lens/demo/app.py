"""The Gradio page of ``heta-lens demo``: layout and event wiring over :mod:`.core`/:mod:`.render`.

Gradio is imported when :func:`build_app` runs (``pip install 'heta-lens[demo]'``) and is typed
as ``Any`` at this boundary. Nothing leaves the machine: analytics and the version check are
off, no share link, no server-side rendering, the theme's fonts are served locally.
"""

import atexit
import importlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from heta_lens.demo.core import (
    NEXT_TOKEN,
    NEXT_TOKEN_LABEL,
    ModelCache,
    build_request,
    run_method,
    target_choices,
    write_downloads,
)
from heta_lens.demo.render import (
    breakdown,
    components,
    message_html,
    render_tokens,
    summary_markdown,
)
from heta_lens.demo.target_form import CONTRAST, KIND_CHOICES, SPAN, TOKEN, TargetForm
from heta_lens.models import Backend, ModelNotInstalledError
from heta_lens.presets import PRESETS
from heta_lens.registry import get_method, list_methods
from heta_lens.result import AttributionResult

_LOG = logging.getLogger(__name__)
EXAMPLES = (
    "The capital of France is",
    "When Mary and John went to the store, John gave a drink to",
    "The cat sat on the mat because it was tired. The animal that was tired was the",
)
_USER_ERRORS = (ValueError, TypeError, FileNotFoundError, ModelNotInstalledError)
CSS = """
.heta-tokens{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:15px;line-height:2.3}
.heta-tok{padding:2px 3px;margin:0 1px;border:1px solid #e3e3e3;border-radius:3px;
 white-space:pre;cursor:help}
.heta-target{padding:2px 5px;margin:0 2px;outline:2px solid #111;border-radius:3px;
 font-weight:700;white-space:pre;background:#fff;color:#111}
.heta-target::after{content:" \\25C0  target";font-weight:400;font-size:11px;color:#666}
.heta-legend{font-size:12px;color:#666;margin-top:4px}
.heta-message{padding:8px 12px;border:1px solid #f59e0b;background:#fffbeb;color:#92400e;
 border-radius:6px;font-size:15px}
"""
INTRO = """\
# heta-lens · which tokens drove this prediction?
Type a text, pick what to explain — the model's **next token** or a token of the text, a
**contrast** of an answer against a foil, or a multi-token **span** — a method and a preset,
then **Attribute**. Tokens are coloured by their attribution; hover one for every value.
HETA = semantic gate × (β · curvature + γ · information). Everything runs locally.
"""


def _gradio() -> Any:
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    return importlib.import_module("gradio")


def _failure(error: Exception) -> str:
    """The page's message for an exception: its text for input errors, a short line else."""
    if isinstance(error, _USER_ERRORS):
        return str(error)
    _LOG.exception("unexpected error in the demo")
    return f"unexpected error ({type(error).__name__}): {error}. See the server log."


def _method_choices() -> list[tuple[str, str]]:
    return [(f"{name} · {get_method(name).description}", name) for name in list_methods()]


def build_app(*, cache: ModelCache, models: list[str], backend: Backend, max_tokens: int) -> Any:
    """The ``gr.Blocks`` page (not launched).

    Args:
        cache: Where models are loaded (lazily) and kept.
        models: Names for the model picker; the first is selected.
        backend: ``"bridge"`` or ``"hooked"`` for every model.
        max_tokens: Longest request accepted (tokens, the predicted one included).
    """
    gr = _gradio()
    downloads = Path(tempfile.mkdtemp(prefix="heta-lens-demo-"))
    atexit.register(shutil.rmtree, downloads, ignore_errors=True)
    tracked = gr.Progress(track_tqdm=True)  # Gradio injects progress through this default

    def update_targets(text: str, model_name: str) -> Any:
        # Only the choices change: the value stays what the user picked or typed meanwhile
        # (a position no longer in the text is explained by the run's message).
        try:
            choices = target_choices(cache.get(model_name, backend), text, max_tokens=max_tokens)
        except Exception:  # the run explains any problem; the picker just stays as it is
            choices = [(NEXT_TOKEN_LABEL, NEXT_TOKEN)]
        return gr.Dropdown(choices=choices)

    def show_fields(kind: str) -> tuple[Any, ...]:
        return (
            gr.Dropdown(visible=kind == TOKEN),
            gr.Row(visible=kind == CONTRAST),
            gr.Textbox(visible=kind == SPAN),
        )

    def run(
        text: str,
        model_name: str,
        kind: str,
        target: str | None,
        answer: str,
        foil: str,
        span: str,
        method: str,
        preset: str | None,
        progress: Any = tracked,
    ) -> tuple[Any, ...]:
        try:
            form = TargetForm(kind=kind, token=target, answer=answer, foil=foil, span=span)
            if not cache.is_loaded(model_name, backend):
                progress(0.0, desc=f"loading {model_name} (once)")
            model = cache.get(model_name, backend)
            start = time.perf_counter()  # the summary reports the attribution, not the load
            progress(0.05, desc="tokenising")
            request = build_request(model, text, form, max_tokens=max_tokens)
            progress(0.1, desc=f"{method}: attributing {request.context} context tokens")
            result = run_method(model, request, method=method, preset=preset, progress=True)
            files = write_downloads(result, Path(tempfile.mkdtemp(dir=downloads)))
        except Exception as error:
            hidden = gr.Column(visible=False)
            return (message_html(_failure(error)), hidden, "", gr.Radio(), "", None, None, None)
        table = breakdown(result)
        summary = summary_markdown(
            result,
            preset=preset,
            seconds=time.perf_counter() - start,
            generated=request.generated,
        )
        names = list(components(result))
        return (
            "",
            gr.Column(visible=True),
            summary,
            gr.Radio(choices=names, value="score"),
            render_tokens(result),
            {"headers": list(table.headers), "data": [list(row) for row in table.rows]},
            [str(path) for path in files],
            result,
        )

    def recolour(result: AttributionResult | None, component: str | None) -> str:
        return "" if result is None else render_tokens(result, component=component or "score")

    with gr.Blocks(title="heta-lens demo", analytics_enabled=False) as app:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=3):
                text = gr.Textbox(label="Text", lines=3, elem_id="heta-text", autofocus=True)
                kind = gr.Radio(
                    label="Explain", choices=list(KIND_CHOICES), value=TOKEN, elem_id="heta-kind"
                )
                target = gr.Dropdown(
                    label="Target: the token to explain",
                    choices=[(NEXT_TOKEN_LABEL, NEXT_TOKEN)],
                    value=NEXT_TOKEN,
                    allow_custom_value=True,
                    elem_id="heta-target",
                )
                with gr.Row(visible=False) as contrast:
                    answer = gr.Textbox(
                        label="Answer: one token, leading space included (empty = next token)",
                        placeholder=" Paris",
                        elem_id="heta-answer",
                    )
                    foil = gr.Textbox(
                        label="Foil: logit(answer) − logit(foil) at the text's last token",
                        placeholder=" London",
                        elem_id="heta-foil",
                    )
                span = gr.Textbox(
                    label="Span: the continuation explained as a whole, Σ log P(its tokens)",
                    placeholder=" Eiffel Tower",
                    visible=False,
                    elem_id="heta-span",
                )
                gr.Examples(examples=[[e] for e in EXAMPLES], inputs=[text])
            with gr.Column(scale=2):
                model = gr.Dropdown(label="Model", choices=models, value=models[0])
                method = gr.Dropdown(
                    label="Method", choices=_method_choices(), value="heta", elem_id="heta-method"
                )
                preset = gr.Dropdown(
                    label="Preset (HETA methods only; full = eq. 3 exactly, slow)",
                    choices=list(PRESETS),
                    value="fast",
                    elem_id="heta-preset",
                )
                button = gr.Button("Attribute", variant="primary", elem_id="heta-run")
        message = gr.HTML(elem_id="heta-message")
        with gr.Column(visible=False) as results:
            summary = gr.Markdown(elem_id="heta-summary")
            colour = gr.Radio(label="Colour by", choices=["score"], value="score")
            tokens = gr.HTML(elem_id="heta-tokens")
            table = gr.Dataframe(
                label="Component breakdown, ranked by score",
                interactive=False,
                elem_id="heta-table",
            )
            files = gr.File(
                label="Download (HTML page, JSON)",
                file_count="multiple",
                interactive=False,
                elem_id="heta-files",
            )
        state = gr.State(None)

        for trigger in (text.change, model.change):
            trigger(
                update_targets,
                inputs=[text, model],
                outputs=target,
                trigger_mode="always_last",
                show_progress="hidden",
            )
        kind.change(show_fields, inputs=kind, outputs=[target, contrast, span])
        button.click(
            run,
            inputs=[text, model, kind, target, answer, foil, span, method, preset],
            outputs=[message, results, summary, colour, tokens, table, files, state],
        )
        colour.change(recolour, inputs=[state, colour], outputs=tokens, show_progress="hidden")
    return app


def _preload(cache: ModelCache, name: str, backend: Backend, emit: Callable[[str], None]) -> None:
    start = time.perf_counter()
    try:
        cache.get(name, backend)
    except Exception as error:  # the page reports it when the model is used
        emit(f"could not load {name}: {error}")
        return
    emit(f"{name} ({backend}) loaded in {time.perf_counter() - start:.1f} s")


def serve(
    *,
    models: list[str],
    backend: Backend,
    host: str,
    port: int,
    max_tokens: int,
    preload: bool,
    emit: Callable[[str], None],
    cache: ModelCache | None = None,
) -> None:
    """Launch the page on ``host:port`` and block until interrupted.

    Args:
        models: The model picker's names; the first is selected at start (and loaded right
            away in the background if ``preload``).
        backend: TransformerLens model type for every model.
        host: Interface to listen on (``127.0.0.1``: this machine only).
        port: TCP port.
        max_tokens: Longest request accepted.
        preload: Load the first model as soon as the server is up.
        emit: Where status lines (the URL first) go.
        cache: Where models are loaded and kept (default: :func:`heta_lens.load_model` on the
            CPU, float32; ``heta-lens demo --device/--dtype`` passes its own).
    """
    gr = _gradio()
    cache = ModelCache() if cache is None else cache
    app = build_app(cache=cache, models=models, backend=backend, max_tokens=max_tokens)
    app.queue(default_concurrency_limit=1)
    _, local_url, _ = app.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        prevent_thread_lock=True,
        quiet=True,
        show_error=False,
        ssr_mode=False,
        pwa=False,
        mcp_server=False,
        footer_links=[],
        theme=gr.themes.Default(),
        css=CSS,
    )
    emit(f"heta-lens demo running at {local_url} (Ctrl+C to stop)")
    if preload:
        threading.Thread(
            target=_preload, args=(cache, models[0], backend, emit), daemon=True
        ).start()
    app.block_thread()
