"""``heta-lens demo``: a local web page (Gradio) for running attributions interactively.

:mod:`heta_lens.demo.core` (validation, running a method, downloads),
:mod:`heta_lens.demo.target_form` (contrast and span targets from the page's fields) and
:mod:`heta_lens.demo.render` (coloured tokens, breakdown table) are plain Python, tested on tiny
models; :mod:`heta_lens.demo.app` is the Gradio layout over them and is the only module that
needs the ``demo`` extra (``pip install 'heta-lens[demo]'``). Importing this package does not
import Gradio.
"""

from heta_lens.demo.core import (
    DEFAULT_MAX_TOKENS,
    MAX_CHARS,
    NEXT_TOKEN,
    DemoRequest,
    ModelCache,
    build_request,
    installed_models,
    method_config,
    parse_target,
    run_method,
    target_choices,
    write_downloads,
)
from heta_lens.demo.render import Breakdown, breakdown, message_html, render_tokens
from heta_lens.demo.target_form import KIND_CHOICES, TargetForm

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "KIND_CHOICES",
    "MAX_CHARS",
    "NEXT_TOKEN",
    "Breakdown",
    "DemoRequest",
    "ModelCache",
    "TargetForm",
    "breakdown",
    "build_request",
    "installed_models",
    "message_html",
    "method_config",
    "parse_target",
    "render_tokens",
    "run_method",
    "target_choices",
    "write_downloads",
]
