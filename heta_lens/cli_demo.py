"""``heta-lens demo``: serve the interactive attribution page (Gradio, the ``demo`` extra)."""

import argparse
import functools
import importlib.util
import os
import sys
from collections.abc import Callable
from typing import Any

from torch import nn

from heta_lens.demo.core import DEFAULT_MAX_TOKENS, ModelCache, installed_models
from heta_lens.devices import DeviceOptions, resolve_device, resolve_dtype
from heta_lens.flags import add_flags, from_flags
from heta_lens.models import load_model

MISSING_GRADIO = "`heta-lens demo` needs gradio: pip install 'heta-lens[demo]'"


def add_demo_parser(sub: Any) -> None:
    """Register the ``demo`` subcommand on the CLI's subparsers."""
    demo = sub.add_parser(
        "demo",
        help="a local web page to run attributions interactively (needs the demo extra)",
        description=(
            "Serve a page where you type a text, pick the token to explain (or the model's next "
            "token), a method and a preset, and see the tokens coloured by attribution. "
            "Local only: nothing is downloaded and no share link is made."
        ),
    )
    demo.add_argument("--model", default="smollm2-135m", help="model selected at start")
    demo.add_argument("--backend", choices=["bridge", "hooked"], default="bridge")
    add_flags(demo, DeviceOptions)
    demo.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    demo.add_argument("--port", type=int, default=7860)
    demo.add_argument(
        "--max-tokens",
        type=int,
        default=DEFAULT_MAX_TOKENS,
        help=f"longest text accepted, in tokens (default {DEFAULT_MAX_TOKENS})",
    )
    demo.add_argument(
        "--no-preload",
        action="store_true",
        help="load the model on first use instead of right after the server starts",
    )


def model_loader(where: DeviceOptions) -> Callable[..., nn.Module]:
    """:func:`heta_lens.load_model` on ``where``'s device and dtype (``loader(name,
    backend=...)``, what :class:`~heta_lens.demo.core.ModelCache` calls).

    Raises:
        ValueError: An unavailable device or an unknown dtype (checked now, not at first use).
    """
    device, dtype = resolve_device(where.device), resolve_dtype(where.dtype)
    return functools.partial(load_model, device=device, dtype=dtype)


def has_gradio() -> bool:
    """Whether the ``demo`` extra (gradio) is installed; nothing is imported."""
    return importlib.util.find_spec("gradio") is not None


def cmd_demo(args: argparse.Namespace) -> int:
    """Run ``heta-lens demo`` (blocks until interrupted)."""
    if args.max_tokens < 2:
        raise ValueError(f"--max-tokens must be at least 2; got {args.max_tokens}")
    loader = model_loader(from_flags(DeviceOptions, args))  # an unavailable device fails now
    if not has_gradio():
        print(f"heta-lens: error: {MISSING_GRADIO}", file=sys.stderr)
        return 2
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    from heta_lens.demo.app import serve

    try:
        serve(
            models=installed_models(args.model),
            cache=ModelCache(loader),
            backend=args.backend,
            host=args.host,
            port=args.port,
            max_tokens=args.max_tokens,
            preload=not args.no_preload,
            emit=lambda line: print(line, flush=True),
        )
    except OSError as error:  # e.g. the port is taken
        print(
            f"heta-lens: error: cannot serve on {args.host}:{args.port}: {error}", file=sys.stderr
        )
        return 2
    return 0
