"""What an attribution explains: one scalar f of the input, named by a target.

- :class:`Token` — f = log P(x_t | x_<t), the paper's target (an ``int`` target means this).
- :class:`Contrast` — f = logit(answer) − logit(foil) at a position (IOI-style logit
  difference).
- :class:`Span` — f = Σ_j log P(y_j | prompt, y_<j) of a teacher-forced continuation.
- :class:`Metric` — f = fn(activation of one hook point at a position): a residual direction,
  a head's output norm, an SAE latent's pre-activation, ...

:func:`prepare_target` validates a target against the model and tokens and resolves it into a
request whose :class:`~heta_lens.objective.Objective` every component reads (definitions of
the curvature, information and gate of each kind: :mod:`heta_lens.objective`,
:func:`heta_lens.gate.objective_gate`). Scores are always for the attributed context tokens:
positions ``0..p`` for a contrast or metric at position p, the prompt for a span.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import torch
from torch import Tensor, nn

from heta_lens.generation import append_target_text, greedy_generate
from heta_lens.hooks import ModelAdapter, names, preserved_model_state
from heta_lens.hooks.readouts import encode
from heta_lens.inputs import Prepared, as_token_tensor, prepare
from heta_lens.objective import ContrastObjective, MetricObjective, SpanObjective


@dataclass(frozen=True)
class Token:
    """f = log P(tokens[index] | tokens[:index]) (default: the last token)."""

    index: int | None = None


@dataclass(frozen=True)
class Contrast:
    """f = logit(answer) − logit(foil) at ``position`` of the input (default: the last).

    ``answer``/``foil`` are token ids or strings that tokenize to exactly one token (with
    its leading space, e.g. ``" Mary"``). ``kl`` chooses the information term: ``"pair"``
    (default), KL between the original and masked two-way distributions
    softmax([logit_answer, logit_foil]) — the distribution f is the log-odds of, so masking
    that leaves the answer/foil odds unchanged scores 0 whatever it does to other tokens;
    ``"vocab"``, the full next-token KL (as for a token target; it ignores answer and foil).
    """

    answer: int | str
    foil: int | str
    position: int = field(default=-1, kw_only=True)
    kl: Literal["pair", "vocab"] = field(default="pair", kw_only=True)

    def __post_init__(self) -> None:
        if self.kl not in ("pair", "vocab"):
            raise ValueError(f"Contrast kl must be 'pair' or 'vocab'; got {self.kl!r}")


@dataclass(frozen=True)
class Span:
    """f = Σ_j log P(y_j | prompt, y_<j): a continuation y_1..y_k after the prompt, teacher
    forced. Text must start where a token starts (e.g. ``" Eiffel Tower"``); ids are appended."""

    continuation: str | tuple[int, ...]

    def __post_init__(self) -> None:
        if isinstance(self.continuation, list):
            object.__setattr__(self, "continuation", tuple(self.continuation))
        if not self.continuation:
            raise ValueError("Span continuation is empty")


@dataclass(frozen=True)
class Metric:
    """f = fn(activation of ``hook_name`` at ``position``), a scalar of one hook point.

    ``fn`` receives the activation at that position without the batch axis (e.g.
    ``[d_model]`` for ``blocks.3.hook_resid_post``, ``[head_index, d_head]`` for
    ``blocks.3.attn.hook_z``, ``[head_index, key_pos]`` for a pattern's query row) and must
    return a 0-d floating tensor, differentiably. ``label`` names f in tables (default: the
    function's name).
    """

    hook_name: str
    fn: Callable[[Tensor], Tensor]
    position: int = field(kw_only=True)
    label: str | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise TypeError(f"Metric fn must be callable; got {type(self.fn).__name__}")


Target = Token | Contrast | Span | Metric
TargetLike = int | Token | Contrast | Span | Metric | None
"""What ``attribute`` and every method accept as ``target`` (``None``/``int``: a token)."""


def target_kind(target: TargetLike) -> str:
    """``"token"``, ``"contrast"``, ``"span"`` or ``"metric"``."""
    if target is None or isinstance(target, int | Token):
        return "token"
    return type(target).__name__.lower()


def prepare_target(adapter: ModelAdapter, tokens: object, target: object) -> Prepared:
    """Validate ``tokens`` and ``target`` and resolve the target into the request's objective.

    Raises:
        TypeError: Bad token type, or a target that is none of the kinds.
        ValueError: As :func:`heta_lens.inputs.prepare`; a position past the end; an
            answer/foil that is not exactly one token; a span that merges with the prompt;
            a hook point the model does not have.

    Examples:
        >>> from heta_lens.testing import tiny_bridge
        >>> adapter = ModelAdapter(tiny_bridge())
        >>> req = prepare_target(adapter, torch.tensor([1, 5, 7]), Contrast(4, 8))
        >>> req.target, req.goal.kind, req.goal.description
        (3, 'contrast', "logit('w4') − logit('w8') at pos 2")
    """
    if target is None or isinstance(target, int):
        return prepare(adapter, tokens, target)
    if isinstance(target, Token):
        return prepare(adapter, tokens, target.index)
    if isinstance(target, Span):
        return _prepare_span(adapter, tokens, target)
    if not isinstance(target, Contrast | Metric):
        raise TypeError(
            "target must be an int token index, Token, Contrast, Span or Metric; "
            f"got {type(target).__name__}"
        )
    ids = _checked_length(adapter, as_token_tensor(adapter, tokens))
    pos = _position(target.position, int(ids.numel()))
    if isinstance(target, Contrast):
        answer = _one_token(adapter, target.answer, "answer")
        foil = _one_token(adapter, target.foil, "foil")
        text = f"logit({_show(adapter, answer)}) − logit({_show(adapter, foil)}) at pos {pos}"
        goal = ContrastObjective(target_id=answer, foil_id=foil, kl=target.kl, description=text)
    else:
        goal = _metric_objective(adapter, target, pos)
    ctx = pos + 1
    next_id = int(ids[ctx]) if ctx < ids.numel() else -1
    return Prepared(tokens=ids, target=ctx, prefix=ids[:ctx], target_id=next_id, objective=goal)


def _checked_length(adapter: ModelAdapter, ids: Tensor) -> Tensor:
    if ids.numel() > adapter.n_ctx:
        raise ValueError(
            f"sequence of {ids.numel()} tokens exceeds the model context n_ctx={adapter.n_ctx}"
        )
    return ids


def _position(position: int, n: int) -> int:
    if isinstance(position, bool) or not isinstance(position, int):
        raise TypeError(f"position must be an int; got {type(position).__name__}")
    index = position + n if position < 0 else position
    if not 0 <= index < n:
        raise ValueError(f"position {position} is out of range for {n} tokens")
    return index


def _show(adapter: ModelAdapter, token_id: int) -> str:
    strings = adapter.to_str_tokens(torch.tensor([token_id]))
    return repr(strings[0]) if strings else str(token_id)


def _one_token(adapter: ModelAdapter, token: object, role: str) -> int:
    if isinstance(token, bool) or not isinstance(token, int | str):
        raise TypeError(f"Contrast {role} must be a token id or a string; got {type(token)}")
    if isinstance(token, int):
        if not 0 <= token < adapter.d_vocab:
            raise ValueError(f"Contrast {role} id {token} outside [0, d_vocab={adapter.d_vocab})")
        return token
    ids = encode(adapter, token) if token else torch.zeros(0, dtype=torch.long)
    if ids.numel() != 1:
        pieces = adapter.to_str_tokens(ids) if ids.numel() else []
        raise ValueError(
            f"Contrast {role} {token!r} tokenizes to {ids.numel()} tokens {pieces}; it must be "
            "exactly one token (mind the leading space), or pass a token id"
        )
    return int(ids[0])


def _prepare_span(adapter: ModelAdapter, tokens: object, target: Span) -> Prepared:
    if isinstance(target.continuation, str):
        if not isinstance(tokens, str):
            raise ValueError(
                "a Span given as text needs the prompt as text too (to check the token "
                "boundary); pass the continuation as token ids with a token-id prompt"
            )
        full, positions = append_target_text(adapter.model, tokens, target.continuation)
        n = positions[0]
    else:
        prompt = as_token_tensor(adapter, tokens)
        cont = as_token_tensor(adapter, list(target.continuation))
        full, n = torch.cat([prompt, cont]), int(prompt.numel())
    if full.numel() - 1 > adapter.n_ctx:
        raise ValueError(
            f"prompt and span run {full.numel() - 1} tokens, over the model context "
            f"n_ctx={adapter.n_ctx}"
        )
    ys = tuple(int(t) for t in full[n:])
    strings = adapter.to_str_tokens(full[n:])
    shown = repr("".join(strings)) if strings else str(list(ys))
    text = f"Σ log P({shown} | prompt), {len(ys)} tokens teacher forced"
    goal = SpanObjective(continuation=ys, description=text)
    return Prepared(tokens=full, target=n, prefix=full[:n], target_id=ys[0], objective=goal)


def _metric_objective(adapter: ModelAdapter, target: Metric, pos: int) -> MetricObjective:
    hooks: Sequence[str] = list(adapter.model.hook_dict)
    if target.hook_name not in hooks:
        close = [h for h in hooks if h.endswith(target.hook_name.rsplit(".", 1)[-1])][:4]
        hint = f"; e.g. {', '.join(close)}" if close else ""
        raise ValueError(f"hook point {target.hook_name!r} does not exist on this model{hint}")
    label = target.label or getattr(target.fn, "__name__", "fn")
    return MetricObjective(
        hook_name=target.hook_name,
        fn=target.fn,
        position_axis=names.position_axis(target.hook_name),
        gate_layers=names.mixing_layers(target.hook_name, adapter.n_layers),
        description=f"{label}({target.hook_name}) at pos {pos}",
    )


T = TypeVar("T")


def on_request(
    model: nn.Module,
    tokens: object,
    target: object,
    compute: Callable[[ModelAdapter, Prepared], T],
) -> T:
    """The shell of every public engine function: wrap ``model`` in a :class:`ModelAdapter`,
    validate ``(tokens, target)`` (:func:`prepare_target`), then run ``compute(adapter, request)``
    inside :func:`~heta_lens.hooks.preserved_model_state`, so the model is left exactly as it
    was even when ``compute`` raises.

    Raises:
        TypeError | ValueError: As :class:`ModelAdapter` and :func:`prepare_target`.
    """
    adapter = ModelAdapter(model)
    req = prepare_target(adapter, tokens, target)
    with preserved_model_state(adapter.model):
        return compute(adapter, req)


__all__ = [
    "Contrast",
    "Metric",
    "Span",
    "Target",
    "TargetLike",
    "Token",
    "append_target_text",
    "greedy_generate",
    "on_request",
    "prepare_target",
    "target_kind",
]
