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
from heta_lens.demo.target_form import TOKEN, TargetForm, resolve
from heta_lens.hooks import ModelAdapter
from heta_lens.inputs import prepare
from heta_lens.models import Backend, list_models, load_model
from heta_lens.registry import get_method
from heta_lens.result import AttributionResult
from heta_lens.targets import Contrast, Span, greedy_generate, target_kind
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
    """A validated request from the page: what the registry method is called with.

    Attributes:
        tokens: Token ids, ``[pos]``; for a next-token target the last one is the model's own.
        target: Index of the explained token (``1 <= target < len(tokens)``), or a contrast at
            the last position or a span (continuation as token ids) after ``tokens``.
        context: Number of attributed context tokens (``target`` for a token).
        generated: Whether the model's greedy next token is explained (as the token, or as a
            contrast's answer).
    """

    tokens: Int[Tensor, " pos"]
    target: int | Contrast | Span
    context: int
    generated: bool

    def __post_init__(self) -> None:
        n = self.tokens.numel() if self.tokens.ndim == 1 else 0
        index = self.target
        if isinstance(index, int) and not (1 <= index < n and self.context == index):
            raise ValueError(f"target {self.target} must index a non-first token of {n} tokens")
        if not 1 <= self.context <= n:
            raise ValueError(f"context {self.context} must be within the {n} tokens")

    @property
    def kind(self) -> str:
        """``"token"``, ``"contrast"`` or ``"span"``."""
        return target_kind(self.target)


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
    model: nn.Module, text: str, target: TargetForm | str | int | None, *, max_tokens: int
) -> DemoRequest:
    """Validate the page's input and turn it into token ids and a library target.

    ``target`` is the page's target fields (:class:`~heta_lens.demo.target_form.TargetForm`)
    or, for a token, just the picker's value. With "next token" the model's greedy next token
    is appended and explained; a contrast or span is built by
    :func:`~heta_lens.demo.target_form.resolve`.

    Raises:
        ValueError: Empty text; text over :data:`MAX_CHARS` characters or over ``max_tokens``
            tokens (or the model's context); a target outside the text or at position 0 (the
            message of :func:`heta_lens.inputs.prepare`, with a hint); a bad contrast or span
            (the message of :func:`heta_lens.targets.prepare_target`).
    """
    if not text.strip():
        raise ValueError("empty text: type a prompt to attribute")
    if len(text) > MAX_CHARS:
        raise ValueError(
            f"text too long: {len(text)} characters; the demo accepts at most {MAX_CHARS}"
        )
    adapter = ModelAdapter(model)
    limit = min(max_tokens, adapter.n_ctx)
    if isinstance(target, TargetForm) and target.kind != TOKEN:
        got = resolve(model, text, target, limit=limit)
        return DemoRequest(
            tokens=got.tokens, target=got.target, context=got.context, generated=got.generated
        )
    index = parse_target(target.token if isinstance(target, TargetForm) else target)
    ids = adapter.to_tokens(text)
    needed = int(ids.numel()) + (1 if index is None else 0)
    if needed > limit:
        extra = " plus the predicted one" if index is None else ""
        raise ValueError(
            f"text too long: {ids.numel()} tokens{extra}; the demo accepts at most {limit} "
            "(shorten it, or use `heta-lens attribute --preset WIN` for long texts)"
        )
    if index is None:
        tokens, positions = greedy_generate(model, ids, max_new_tokens=1)
        return DemoRequest(tokens=tokens, target=positions[0], context=positions[0], generated=True)
    try:
        prepared = prepare(adapter, ids, index)
    except ValueError as error:
        raise ValueError(
            f"{error}; pick a token of the text (positions 1 to {ids.numel() - 1}) or 'next token'"
        ) from error
    return DemoRequest(
        tokens=prepared.tokens, target=prepared.target, context=prepared.target, generated=False
    )


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
    """Run ``method`` (with ``preset`` for HETA methods) on a validated request's target.

    The call every caller makes: ``get_method(method)(model, tokens, target=..., config=...,
    progress=...)``, so the scores are those of :func:`heta_lens.attribute` (HETA) or the
    baseline called directly with the same target and config.

    Args:
        model: The loaded model.
        request: From :func:`build_request`.
        method: A registry name (:func:`heta_lens.list_methods`).
        preset: A preset name (:data:`heta_lens.PRESETS`) or ``None``; ignored by baselines.
        progress: Show tqdm bars (HETA methods), which the page turns into its progress bar.

    Raises:
        ValueError: Unknown method or preset; a method that is not defined for the target's
            kind (attention rollout, last-layer attention, ContextCite and ReAGent take tokens
            only; the message names the kind and the methods that take it).
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
        ``(html_path, json_path)``, named after the method, target kind and target position.
    """
    directory.mkdir(parents=True, exist_ok=True)
    kind = "target" if result.target_kind == "token" else result.target_kind
    stem = f"heta-lens-{result.method}-{kind}{result.target}"
    html_path = save_html(result, directory / f"{stem}.html")
    json_path = directory / f"{stem}.json"
    json_path.write_text(json.dumps([result.to_dict()], indent=1), encoding="utf-8")
    return html_path, json_path
