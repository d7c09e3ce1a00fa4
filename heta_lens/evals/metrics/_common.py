"""Plumbing shared by the model-based metrics: validation, ranking, top-k masks, forwards."""

import math
from collections.abc import Sequence

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

from heta_lens._typing import TokensLike
from heta_lens.hooks import ModelAdapter
from heta_lens.inputs import Prepared, prepare


def check_scores(scores: Tensor, ctx: int) -> None:
    """Raise ``ValueError`` unless ``scores`` is a finite ``[ctx]`` vector."""
    if tuple(scores.shape) != (ctx,):
        raise ValueError(
            f"scores must have one entry per context token, shape [{ctx}]; "
            f"got {tuple(scores.shape)}"
        )
    if not bool(torch.isfinite(scores).all()):
        raise ValueError("scores contain NaN or infinite values")


def validated(
    model: nn.Module, tokens: TokensLike, *, target: int, scores: Tensor
) -> tuple[ModelAdapter, Prepared, Tensor]:
    """Adapter, validated request and detached scores (on the model's device).

    Raises:
        TypeError: Unsupported model or token type.
        ValueError: Bad tokens/target (see :func:`heta_lens.inputs.prepare`), or ``scores``
            not a finite vector with ``target`` entries.
    """
    adapter = ModelAdapter(model)
    req = prepare(adapter, tokens, target)
    check_scores(scores, req.target)
    return adapter, req, scores.detach().to(adapter.device)


def ranking(scores: Float[Tensor, " ctx"]) -> Int[Tensor, " ctx"]:
    """Positions by descending score; equal scores keep ascending position order.

    A stable ascending sort of ``-scores``: among ties the earlier position ranks first, so
    the order is a deterministic function of the scores (no dependence on sort internals).
    """
    return torch.sort(-scores, stable=True).indices


def check_fractions(fractions: Sequence[float]) -> tuple[float, ...]:
    """Validate step fractions: non-empty, each in (0, 1]."""
    out = tuple(float(f) for f in fractions)
    if not out:
        raise ValueError("fractions must not be empty")
    bad = [f for f in out if not 0.0 < f <= 1.0]
    if bad:
        raise ValueError(f"fractions must lie in (0, 1]; got {bad}")
    return out


def count_for_fraction(fraction: float, ctx: int) -> int:
    """k = max(1, ceil(fraction · ctx)), capped at ``ctx``.

    The product is rounded to 9 decimals before the ceiling so that binary round-off does not
    add a token (``0.3 * 10`` is ``3.0000000000000004`` in floating point; k must be 3).
    """
    return min(ctx, max(1, math.ceil(round(fraction * ctx, 9))))


def check_protected(protected: int, ctx: int) -> int:
    """Positions a perturbation may touch, ``ctx − protected``; raise if there are none.

    ``protected`` leading positions (the BOS/sink under the ``standard`` protocol,
    :mod:`heta_lens.evals.protocol`) are never masked and never normalised over.

    Raises:
        ValueError: ``protected`` not 0 or 1, or no position left to perturb.
    """
    if protected not in (0, 1):
        raise ValueError(f"protected must be 0 or 1 (the BOS/sink); got {protected}")
    if ctx - protected < 1:
        raise ValueError(
            f"the context ({ctx} position(s)) holds only protected positions: nothing to perturb"
        )
    return ctx - protected


def top_k_masks(
    scores: Float[Tensor, " ctx"], counts: Sequence[int], *, protected: int = 0
) -> Bool[Tensor, "step ctx"]:
    """Row j marks the ``counts[j]`` highest-scoring positions (ties: earlier position first)
    among positions ``>= protected`` (the first ``protected`` are never marked)."""
    ctx = int(scores.numel())
    order = ranking(scores[protected:]) + protected
    rank = torch.full((ctx,), ctx, dtype=torch.long, device=scores.device)
    rank[order] = torch.arange(ctx - protected, device=scores.device)
    k = torch.tensor(list(counts), dtype=torch.long, device=scores.device)
    return rank[None, :] < k[:, None]


def free_mask(ctx: int, protected: int, device: torch.device) -> Bool[Tensor, " ctx"]:
    """True at the positions a perturbation may touch (``>= protected``)."""
    return torch.arange(ctx, device=device) >= protected


def replaced(
    x: Float[Tensor, "ctx d_model"],
    replacements: Float[Tensor, "ctx d_model"],
    drop: Bool[Tensor, "batch ctx"],
) -> Float[Tensor, "batch ctx d_model"]:
    """Copies of ``x`` where row b has the positions marked in ``drop[b]`` replaced."""
    return torch.where(drop[:, :, None], replacements[None], x[None])


def batch_log_probs(
    adapter: ModelAdapter, req: Prepared, embeds: Float[Tensor, "batch ctx d_model"]
) -> Float[Tensor, "batch d_vocab"]:
    """Next-token log-probabilities after the prefix, one row per embedding copy, one forward."""
    ids = req.prefix[None].expand(embeds.shape[0], -1)
    return adapter.last_log_probs(ids, embeds)


def distinct_rows(
    embeds: Float[Tensor, "batch ctx d_model"],
) -> tuple[Int[Tensor, " distinct"], Int[Tensor, " batch"]]:
    """Indices of the distinct copies (first occurrences) and each copy's index among them.

    Copies are equal when their tensors are equal element for element, bit for bit (so
    ``embeds[first][inverse]`` is ``embeds`` exactly).
    """
    flat = embeds.detach().reshape(embeds.shape[0], -1).cpu().contiguous()
    seen: dict[bytes, int] = {}
    first: list[int] = []
    inverse: list[int] = []
    for b in range(flat.shape[0]):
        key = flat[b].view(torch.uint8).numpy().tobytes()
        if key not in seen:
            seen[key] = len(first)
            first.append(b)
        inverse.append(seen[key])
    return torch.tensor(first, dtype=torch.long), torch.tensor(inverse, dtype=torch.long)


def distinct_log_probs(
    adapter: ModelAdapter, req: Prepared, embeds: Float[Tensor, "batch ctx d_model"]
) -> tuple[Float[Tensor, "batch d_vocab"], int]:
    """:func:`batch_log_probs` of ``embeds``, forwarding each distinct copy once.

    Row b of the result is the log-probabilities of ``embeds[b]``; a copy that repeats an
    earlier one (the unmasked input shared by several metrics, AOPC's last step) reuses its
    row instead of running again. Also returns how many copies were forwarded.
    """
    first, inverse = distinct_rows(embeds)
    device = embeds.device
    log_p = batch_log_probs(adapter, req, embeds[first.to(device)])
    return log_p[inverse.to(device)], first.numel()
