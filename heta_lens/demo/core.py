"""The demo's logic, free of Gradio: target choices, validation, running a method, downloads.

Every function here is plain Python over a TransformerLens model, so the unit tests drive them
on a tiny random model. Validation failures are ``ValueError`` with a message meant for the page
(the library's own messages, from :func:`heta_lens.inputs.prepare`, are passed through).
"""

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jaxtyping import Int
from torch import Tensor, nn

from heta_lens._typing import typechecked
from heta_lens.hooks import ModelAdapter
from heta_lens.inputs import prepare
from heta_lens.models import Backend, list_models, load_model
from heta_lens.registry import get_method
from heta_lens.result import AttributionResult
from heta_lens.targets import greedy_generate
from heta_lens.viz import save_html, visible_token

NEXT_TOKEN = "next"
"""Target choice value meaning "the model's greedy next token" (appended to the text)."""
NEXT_TOKEN_LABEL = "next token (the model's greedy prediction)"
MAX_CHARS = 4000
"""Texts longer than this are refused before tokenising."""
DEFAULT_MAX_TOKENS = 128
"""Default cap on the tokens of one request (the predicted token included)."""
_LEADING_INT = re.compile(r"\s*(-?\d+)\b")


@dataclass(frozen=True, kw_only=True)
class DemoRequest:
    """A validated request from the page.

    Attributes:
        tokens: All token ids, ``[pos]``; with ``generated`` the last one is the model's own.
        target: Index of the explained token, ``1 <= target < len(tokens)``.
        generated: Whether the target is the greedy next token rather than a token of the text.
    """

    tokens: Int[Tensor, " pos"]
    target: int
    generated: bool

    def __post_init__(self) -> None:
        if self.tokens.ndim != 1 or not 1 <= self.target < self.tokens.numel():
            raise ValueError(
                f"target {self.target} must index a non-first token of {tuple(self.tokens.shape)}"
            )


def installed_models(default: str) -> list[str]:
    """Model names for the picker: ``default`` first, then every installed embedded model.

    ``default`` may be a path or an embedded model that is not installed; the page then shows
    the loading error when it is used.
    """
    names = [default]
    names += [spec.name for spec in list_models() if spec.installed() and spec.name != default]
    return names


class ModelCache:
    """Models loaded on first use and kept, one per ``(name, backend)``; thread-safe.

    Args:
        loader: ``loader(name, backend=...)`` returning a model (default
            :func:`heta_lens.load_model`).
    """

    def __init__(self, loader: Callable[..., nn.Module] = load_model) -> None:
        self._loader = loader
        self._models: dict[tuple[str, Backend], nn.Module] = {}
        self._lock = threading.Lock()

    def is_loaded(self, name: str, backend: Backend) -> bool:
        """Whether ``(name, backend)`` is already in memory."""
        return (name, backend) in self._models

    def get(self, name: str, backend: Backend) -> nn.Module:
        """The model, loading it if needed (concurrent callers wait for one load)."""
        with self._lock:
            key = (name, backend)
            if key not in self._models:
                self._models[key] = self._loader(name, backend=backend)
            return self._models[key]


def target_choices(model: nn.Module, text: str, *, max_tokens: int) -> list[tuple[str, str]]:
    """``(label, value)`` pairs for the target picker: "next token", then tokens 1, 2, ...

    Token 0 (BOS or the first word) is left out: nothing precedes it. Empty, over-long or
    untokenisable text gives only the "next token" choice (validation explains on submit).

    Examples:
        >>> from heta_lens.testing import tiny_bridge
        >>> target_choices(tiny_bridge(), "w5 w7", max_tokens=16)[1:]
        [('1: w5', '1'), ('2: w7', '2')]
    """
    choices = [(NEXT_TOKEN_LABEL, NEXT_TOKEN)]
    if not text.strip() or len(text) > MAX_CHARS:
        return choices
    adapter = ModelAdapter(model)
    ids = adapter.to_tokens(text)[:max_tokens]
    strings = adapter.to_str_tokens(ids) or [str(int(t)) for t in ids]
    choices += [(f"{i}: {visible_token(strings[i])}", str(i)) for i in range(1, len(strings))]
    return choices


def parse_target(choice: str | int | None) -> int | None:
    """The token index a picker value names; ``None`` for the greedy next token.

    Accepts the picker's values (``"next"``, ``"5"``), its labels (``"5: Paris"``) and typed
    integers (negative ones count from the end, as in :func:`heta_lens.attribute`).

    Raises:
        ValueError: Anything else.

    Examples:
        >>> parse_target("next"), parse_target("5: ·Paris"), parse_target(-1)
        (None, 5, -1)
    """
    if choice is None or choice in ("", NEXT_TOKEN, NEXT_TOKEN_LABEL):
        return None
    if isinstance(choice, int):
        return choice
    match = _LEADING_INT.match(choice)
    if match is None:
        raise ValueError(f"target must be 'next token' or a token position; got {choice!r}")
    return int(match.group(1))


def build_request(
    model: nn.Module, text: str, target: str | int | None, *, max_tokens: int
) -> DemoRequest:
    """Validate the page's input and turn it into token ids and a target index.

    With target "next token" the model's greedy next token is appended and explained.

    Raises:
        ValueError: Empty text; text over :data:`MAX_CHARS` characters or over ``max_tokens``
            tokens (or the model's context); a target outside the text or at position 0 (the
            message of :func:`heta_lens.inputs.prepare`, with a hint).
    """
    if not text.strip():
        raise ValueError("empty text: type a prompt to attribute")
    if len(text) > MAX_CHARS:
        raise ValueError(
            f"text too long: {len(text)} characters; the demo accepts at most {MAX_CHARS}"
        )
    adapter = ModelAdapter(model)
    index = parse_target(target)
    ids = adapter.to_tokens(text)
    limit = min(max_tokens, adapter.n_ctx)
    needed = int(ids.numel()) + (1 if index is None else 0)
    if needed > limit:
        extra = " plus the predicted one" if index is None else ""
        raise ValueError(
            f"text too long: {ids.numel()} tokens{extra}; the demo accepts at most {limit} "
            "(shorten it, or use `heta-lens attribute --preset WIN` for long texts)"
        )
    if index is None:
        tokens, positions = greedy_generate(model, ids, max_new_tokens=1)
        return DemoRequest(tokens=tokens, target=positions[0], generated=True)
    try:
        prepared = prepare(adapter, ids, index)
    except ValueError as error:
        raise ValueError(
            f"{error}; pick a token of the text (positions 1 to {ids.numel() - 1}) or 'next token'"
        ) from error
    return DemoRequest(tokens=prepared.tokens, target=prepared.target, generated=False)


def method_config(method: str, preset: str | None) -> Any:
    """The config ``method`` runs with: its default, or ``preset`` for the HETA family.

    A preset replaces the estimator settings only (:func:`heta_lens.presets.with_preset`, the
    rule the CLI and the evals use too); everything else is the method's, so ``heta_kl_only``
    with ``fast`` is still KL-only. Baselines ignore the preset.

    Raises:
        ValueError: Unknown method or preset (the messages list the valid names).
    """
    spec = get_method(method)
    if preset is None or not spec.heta_family:
        return spec.default_config
    return spec.with_preset(preset).default_config


def run_method(
    model: nn.Module,
    request: DemoRequest,
    *,
    method: str,
    preset: str | None,
    progress: bool = False,
) -> AttributionResult:
    """Run ``method`` (with ``preset`` for HETA methods) on a validated request.

    Args:
        model: The loaded model.
        request: From :func:`build_request`.
        method: A registry name (:func:`heta_lens.list_methods`).
        preset: A preset name (:data:`heta_lens.PRESETS`) or ``None``; ignored by baselines.
        progress: Show tqdm bars (HETA methods), which the page turns into its progress bar.

    Raises:
        ValueError: Unknown method or preset.
    """
    spec = get_method(method)
    config = method_config(method, preset)
    return spec(model, request.tokens, target=request.target, config=config, progress=progress)


@typechecked
def write_downloads(result: AttributionResult, directory: Path) -> tuple[Path, Path]:
    """Write the result as a self-contained HTML page and as JSON into ``directory``.

    The HTML is :func:`heta_lens.viz.save_html` (read back with
    :func:`heta_lens.viz.results_from_html`); the JSON is a list with one
    :meth:`~heta_lens.AttributionResult.to_dict`, as ``heta-lens attribute --json`` writes.

    Returns:
        ``(html_path, json_path)``, named after the method and target position.
    """
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"heta-lens-{result.method}-target{result.target}"
    html_path = save_html(result, directory / f"{stem}.html")
    json_path = directory / f"{stem}.json"
    json_path.write_text(json.dumps([result.to_dict()], indent=1), encoding="utf-8")
    return html_path, json_path
