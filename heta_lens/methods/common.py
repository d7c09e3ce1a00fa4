"""What every baseline method shares: input validation, the state guard and the result type."""

from collections.abc import Callable

import torch
from jaxtyping import Float
from torch import Tensor, nn

from heta_lens._typing import TokensLike
from heta_lens.components import target_scalars
from heta_lens.curvature.hvp import target_log_prob_fn
from heta_lens.hooks import ModelAdapter, preserved_model_state
from heta_lens.inputs import Prepared
from heta_lens.objective import TargetKind
from heta_lens.result import AttributionResult
from heta_lens.targets import TargetLike, prepare_target

ScoreFn = Callable[[ModelAdapter, Prepared], Float[Tensor, " ctx"]]
"""Computes one score per context token of a validated request (inside the state guard)."""

EmbedsFn = Callable[[Tensor], Tensor]
"""f on a batch: embeddings ``[batch, ctx, d_model]`` → log P(target) (or the target's f)
``[batch]``."""

ALL_KINDS: tuple[TargetKind, ...] = ("token", "contrast", "span", "metric")
"""Target kinds a method whose score is a function of f alone accepts."""


def log_prob_fn(adapter: ModelAdapter, req: Prepared) -> EmbedsFn:
    """f(E) = log P(target | prefix) with the prefix embeddings replaced by E, batched; for
    another target kind, its scalar f (:mod:`heta_lens.objective`).

    The forward every Captum-backed baseline explains: E replaces the context rows of
    ``hook_embed`` through the adapter (so the hook lives inside ``model.hooks(...)`` and the
    state guard sees it); one row of the batch per embedding matrix.
    """
    return target_log_prob_fn(adapter, req)


def prefix_embeddings(adapter: ModelAdapter, req: Prepared) -> Float[Tensor, "ctx d_model"]:
    """E: the input-embedding rows of the prefix, as at ``hook_embed`` (detached)."""
    with torch.no_grad():
        return adapter.embed(req.prefix[None])[0]


def run_baseline(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: TargetLike,
    method: str,
    score_fn: ScoreFn,
    signed: bool = False,
    kinds: tuple[TargetKind, ...] = ("token",),
) -> AttributionResult:
    """Validate ``(model, tokens, target)``, run ``score_fn`` under the state guard, wrap it.

    ``signed``: the scores can be negative (the result says so; an unsigned result with a
    negative score is refused). ``kinds``: the target kinds the method is defined for
    (:mod:`heta_lens.targets`); another kind is refused before anything runs.

    The guard leaves the model as it was (training flags, ``requires_grad``, grad mode, no hook
    left), even when ``score_fn`` raises.

    Raises:
        TypeError: Unsupported model or non-integer tokens.
        ValueError: Empty tokens, target 0 or out of range, sequence longer than ``n_ctx``,
            a target kind outside ``kinds``, or ``score_fn`` returned the wrong shape /
            non-finite values.
    """
    adapter = ModelAdapter(model)
    req = prepare_target(adapter, tokens, target)
    kind = req.goal.kind
    if kind not in kinds:
        raise ValueError(
            f"{method} does not support {kind} targets (it is defined for: "
            f"{', '.join(kinds)}); use a gradient method, occlusion or HETA for a {kind}"
        )
    with preserved_model_state(model):
        log_prob, value = target_scalars(adapter, req)
        scores = score_fn(adapter, req).detach()
    if tuple(scores.shape) != (req.target,):
        raise ValueError(f"{method}: expected {req.target} scores, got {tuple(scores.shape)}")
    if not bool(torch.isfinite(scores).all()):
        raise ValueError(f"{method}: non-finite scores")
    strings = adapter.to_str_tokens(req.tokens)
    return AttributionResult(
        tokens=req.tokens,
        target=req.target,
        scores=scores,
        method=method,
        token_strings=None if strings is None else tuple(strings),
        target_log_prob=log_prob,
        signed=signed,
        target_kind=kind,
        target_description=req.goal.description,
        target_value=value,
    )
