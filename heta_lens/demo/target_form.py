"""The page's target fields and how a contrast or span request is built from them.

The page explains one of three kinds of target (:mod:`heta_lens.targets`): a token (the
greedy next token or a token of the text; :func:`heta_lens.demo.core.build_request`), a
:class:`~heta_lens.targets.Contrast` of an answer against a foil at the last position of the
text, or a :class:`~heta_lens.targets.Span`, a continuation of several tokens. Both are
validated by :func:`~heta_lens.targets.prepare_target`, so the page shows the library's own
messages (e.g. how a foil that is not one token tokenizes).
"""

from dataclasses import dataclass

from jaxtyping import Int
from torch import Tensor, nn

from heta_lens.hooks import ModelAdapter
from heta_lens.targets import Contrast, Span, greedy_generate, prepare_target

TOKEN = "token"
CONTRAST = "contrast"
SPAN = "span"
KIND_CHOICES: tuple[tuple[str, str], ...] = (
    ("next token / a token of the text", TOKEN),
    ("contrast: answer vs a foil", CONTRAST),
    ("span: a multi-token continuation", SPAN),
)
"""``(label, value)`` pairs of the page's target-kind choice."""


@dataclass(frozen=True, kw_only=True)
class TargetForm:
    """The page's target fields; only those of ``kind`` are read.

    Attributes:
        kind: ``"token"``, ``"contrast"`` or ``"span"``.
        token: The token picker's value (kind token): ``None``/``"next"`` for the greedy next
            token, or a position (:func:`heta_lens.demo.core.parse_target`).
        answer: The contrast's answer, one token with its leading space (``" Paris"``); empty
            for the model's greedy next token.
        foil: The contrast's foil, one token (``" London"``).
        span: The continuation explained as a whole (``" Eiffel Tower"``), starting where a
            token starts.

    Raises:
        ValueError: Unknown kind.
    """

    kind: str = TOKEN
    token: str | int | None = None
    answer: str = ""
    foil: str = ""
    span: str = ""

    def __post_init__(self) -> None:
        kinds = [value for _, value in KIND_CHOICES]
        if self.kind not in kinds:
            raise ValueError(f"target kind must be one of {', '.join(kinds)}; got {self.kind!r}")


@dataclass(frozen=True, kw_only=True)
class Resolved:
    """A contrast or span target ready for the registry.

    Attributes:
        tokens: The prompt's token ids, ``[pos]`` (a span's continuation is in ``target``).
        target: The library target, with a span's continuation as token ids.
        context: Number of attributed context tokens (all of the prompt).
        generated: Whether the contrast's answer is the model's greedy next token.
    """

    tokens: Int[Tensor, " pos"]
    target: Contrast | Span
    context: int
    generated: bool


def resolve(model: nn.Module, text: str, form: TargetForm, *, limit: int) -> Resolved:
    """Build and validate the contrast or span that ``form`` describes on ``text``.

    Args:
        model: The loaded model.
        text: The prompt (non-empty, already length-checked in characters).
        form: Target fields with kind ``"contrast"`` or ``"span"``.
        limit: Most tokens accepted (prompt plus span).

    Raises:
        ValueError: Missing foil or span; too many tokens; an answer or foil that is not one
            token, or a span that merges with the prompt (the library's messages).

    Examples:
        >>> from heta_lens.testing import tiny_bridge
        >>> form = TargetForm(kind="contrast", answer=" w4", foil=" w8")
        >>> r = resolve(tiny_bridge(), "w5 w7", form, limit=16)
        >>> r.target, r.context
        (Contrast(answer=' w4', foil=' w8', position=-1, kl='pair'), 3)
    """
    if form.kind == CONTRAST:
        return _contrast(model, text, form, limit)
    if form.kind == SPAN:
        return _span(model, text, form, limit)
    raise ValueError(f"resolve builds contrast and span targets, not {form.kind!r}")


def _too_long(n: int, limit: int, what: str) -> ValueError:
    return ValueError(
        f"text too long: {n} tokens{what}; the demo accepts at most {limit} (shorten it)"
    )


def _contrast(model: nn.Module, text: str, form: TargetForm, limit: int) -> Resolved:
    if not form.foil:
        raise ValueError('a contrast needs a foil: the token to compare against, e.g. " London"')
    adapter = ModelAdapter(model)
    ids = adapter.to_tokens(text)
    if ids.numel() > limit:
        raise _too_long(int(ids.numel()), limit, "")
    answer: int | str = form.answer
    if not answer:
        generated, _ = greedy_generate(model, ids, max_new_tokens=1)
        answer = int(generated[-1])
    target = Contrast(answer, form.foil)
    prepared = prepare_target(adapter, ids, target)
    return Resolved(tokens=ids, target=target, context=prepared.target, generated=not form.answer)


def _span(model: nn.Module, text: str, form: TargetForm, limit: int) -> Resolved:
    if not form.span:
        raise ValueError('a span target needs its text: the continuation, e.g. " Eiffel Tower"')
    prepared = prepare_target(ModelAdapter(model), text, Span(form.span))
    if prepared.tokens.numel() > limit:
        raise _too_long(int(prepared.tokens.numel()), limit, " with the span")
    continuation = tuple(int(t) for t in prepared.tokens[prepared.target :])
    return Resolved(
        tokens=prepared.prefix,
        target=Span(continuation),
        context=prepared.target,
        generated=False,
    )
