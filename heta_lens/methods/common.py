"""What every baseline method shares: input validation, the state guard and the result type."""

from collections.abc import Callable

import torch
from jaxtyping import Float
from torch import Tensor, nn

from heta_lens._typing import TokensLike
from heta_lens.hooks import ModelAdapter, preserved_model_state
from heta_lens.inputs import Prepared, prepare
from heta_lens.result import AttributionResult

ScoreFn = Callable[[ModelAdapter, Prepared], Float[Tensor, " ctx"]]
"""Computes one score per context token of a validated request (inside the state guard)."""

EmbedsFn = Callable[[Tensor], Tensor]
"""f on a batch: embeddings ``[batch, ctx, d_model]`` → log P(target) ``[batch]``."""


def log_prob_fn(adapter: ModelAdapter, req: Prepared) -> EmbedsFn:
    """f(E) = log P(target | prefix) with the prefix embeddings replaced by E, batched.

    The forward every Captum-backed baseline explains: E replaces the output of ``hook_embed``
    through :meth:`ModelAdapter.last_log_probs` (so the hook lives inside ``model.hooks(...)``
    and the state guard sees it); one row of the batch per embedding matrix.
    """

    def f(embeds: Tensor) -> Tensor:
        tokens = req.prefix[None].expand(embeds.shape[0], -1)
        return adapter.last_log_probs(tokens, embeds)[:, req.target_id]

    return f


def prefix_embeddings(adapter: ModelAdapter, req: Prepared) -> Float[Tensor, "ctx d_model"]:
    """E: the input-embedding rows of the prefix, as at ``hook_embed`` (detached)."""
    with torch.no_grad():
        return adapter.embed(req.prefix[None])[0]


def target_log_prob(adapter: ModelAdapter, req: Prepared) -> float:
    """log P(tokens[target] | tokens[:target]) from one plain forward."""
    with torch.no_grad():
        return float(adapter.last_log_probs(req.prefix[None])[0, req.target_id])


def run_baseline(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: int | None,
    method: str,
    score_fn: ScoreFn,
    signed: bool = False,
) -> AttributionResult:
    """Validate ``(model, tokens, target)``, run ``score_fn`` under the state guard, wrap it.

    ``signed``: the scores can be negative (the result says so; an unsigned result with a
    negative score is refused).

    The guard leaves the model as it was (training flags, ``requires_grad``, grad mode, no hook
    left), even when ``score_fn`` raises.

    Raises:
        TypeError: Unsupported model or non-integer tokens.
        ValueError: Empty tokens, target 0 or out of range, sequence longer than ``n_ctx``, or
            ``score_fn`` returned the wrong shape / non-finite values.
    """
    adapter = ModelAdapter(model)
    req = prepare(adapter, tokens, target)
    with preserved_model_state(model):
        log_prob = target_log_prob(adapter, req)
        scores = score_fn(adapter, req).detach()
    if tuple(scores.shape) != (req.target,):
        raise ValueError(f"{method}: expected {req.target} scores, got {tuple(scores.shape)}")
    if not bool(torch.isfinite(scores).all()):
        raise ValueError(f"{method}: non-finite scores")
    strings = adapter.to_str_tokens(req.tokens)
    return AttributionResult(
        tokens=req.tokens.cpu(),
        target=req.target,
        scores=scores.cpu(),
        method=method,
        token_strings=None if strings is None else tuple(strings),
        target_log_prob=log_prob,
        signed=signed,
    )
