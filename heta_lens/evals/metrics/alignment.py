"""Alignment of attributions with annotated evidence: DSA (fine / coarse) and top-k F1.

docs/evaluation.md, "DSA": an instance is [narrative] + sep + [SciQ support] + sep + question;
S is the set of annotated support tokens inside the SciQ segment. Scores are normalised with
:func:`heta_lens.evals.metrics.soft.normalize_attribution` (negatives clamped to 0, divided by
the sum over all context tokens; uniform when nothing is positive), so that

    DSA = Σ_{i∈S} a_i − Σ_{i∈narrative} a_i  ∈ [−1, 1]

(the two sets are disjoint and a sums to 1). The coarse variant uses the whole SciQ segment
in place of S. The paper's DSA values (up to ~5) are on an unstated scale and are not matched.

Under the ``standard`` protocol (:mod:`heta_lens.evals.protocol`) a is normalised over the
paragraph P = narrative ∪ SciQ segment instead (``over=P``: a_i = max(s_i, 0) / Σ_{j∈P}
max(s_j, 0) on P, uniform on P when nothing there is positive), as the paper defines DSA: mass
a method puts on the BOS/sink, the separators or the question no longer dilutes it. F1 then
ranks positions ≥ 1 only (``protected=1``), so the sink cannot take a top-k slot.
"""

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from heta_lens._typing import typechecked
from heta_lens.evals.metrics._common import check_protected, check_scores, ranking
from heta_lens.evals.metrics.soft import normalize_attribution

Positions = Bool[Tensor, " ctx"] | Int[Tensor, " _marked"]
"""A set of context positions: a boolean mask over the context or a 1-D tensor of indices."""


def as_mask(positions: Tensor, ctx: int, *, name: str) -> Bool[Tensor, " ctx"]:
    """A boolean ``[ctx]`` mask from a mask or an index tensor (repeated indices count once).

    Raises:
        ValueError: A mask of the wrong length or indices outside ``[0, ctx)``.
    """
    if positions.dtype == torch.bool:
        if tuple(positions.shape) != (ctx,):
            raise ValueError(f"{name} mask must have shape [{ctx}]; got {tuple(positions.shape)}")
        return positions
    if positions.numel() and (int(positions.min()) < 0 or int(positions.max()) >= ctx):
        raise ValueError(f"{name} indices must lie in [0, {ctx})")
    mask = torch.zeros(ctx, dtype=torch.bool, device=positions.device)
    mask[positions.long()] = True
    return mask


@typechecked
def dsa(
    scores: Float[Tensor, " ctx"],
    *,
    support: Positions,
    narrative: Positions,
    over: Positions | None = None,
) -> float:
    """DSA = Σ_{i∈support} a_i − Σ_{i∈narrative} a_i, a normalised over ``over``.

    a = :func:`normalize_attribution` of the scores at the positions ``over`` (0 elsewhere);
    ``over=None`` normalises over the whole context (the ``legacy`` protocol). Fine DSA:
    ``support`` = the annotated support tokens S. Coarse DSA (the eval rows' ``dsa_coarse``):
    ``support`` = the whole SciQ segment. Lies in [−1, 1]: +1 when all mass is on the
    support, −1 when all of it is on the narrative.

    Args:
        scores: One score per context token, ``[ctx]``.
        support: Positions of the support (mask ``[ctx]`` or index tensor).
        narrative: Positions of the narrative segment (mask ``[ctx]`` or index tensor).
        over: Positions a is normalised over (the paragraph under ``standard``); must hold
            ``support`` and ``narrative``.

    Raises:
        ValueError: Non-finite scores, positions out of range, overlapping sets, an empty
            ``over``, or support/narrative positions outside ``over``.

    Examples:
        >>> dsa(torch.tensor([1.0, 0.0, 3.0, -2.0]), support=torch.tensor([2]),
        ...     narrative=torch.tensor([True, True, False, False]))
        0.5
    """
    check_scores(scores, scores.numel())
    ctx = int(scores.numel())
    s = as_mask(support, ctx, name="support").to(scores.device)
    n = as_mask(narrative, ctx, name="narrative").to(scores.device)
    if bool((s & n).any()):
        raise ValueError("support and narrative positions overlap; they are disjoint segments")
    if over is None:
        a = normalize_attribution(scores)
    else:
        o = as_mask(over, ctx, name="over").to(scores.device)
        if not bool(o.any()):
            raise ValueError("over is empty: there is nothing to normalise over")
        if bool((s & ~o).any()) or bool((n & ~o).any()):
            raise ValueError("support and narrative positions must lie inside over")
        a = torch.zeros_like(scores)
        a[o] = normalize_attribution(scores[o])
    return float(a[s].sum() - a[n].sum())


@typechecked
def topk_f1(scores: Float[Tensor, " ctx"], *, support: Positions, protected: int = 0) -> float:
    """F1 between the top-k tokens by score and the support set S, with k = |S|.

    Tokens at positions ``>= protected`` are ranked by the raw scores, descending; ties go to
    the earlier position (``protected=1``: the BOS/sink is never among the top k). With
    k = |S| precision and recall coincide, so F1 = |top-k ∩ S| / |S| ∈ [0, 1].

    Raises:
        ValueError: Non-finite scores, positions out of range, an empty support, or a
            support holding a protected position.

    Examples:
        >>> topk_f1(torch.tensor([0.9, 0.1, 0.5, 0.5]), support=torch.tensor([0, 3]))
        0.5
    """
    check_scores(scores, scores.numel())
    s = as_mask(support, int(scores.numel()), name="support").to(scores.device)
    k = int(s.sum())
    if k == 0:
        raise ValueError("support is empty: top-k F1 is undefined")
    check_protected(protected, int(scores.numel()))
    if bool(s[:protected].any()):
        raise ValueError("support holds a protected position (the BOS/sink)")
    hits = int(s[(ranking(scores[protected:]) + protected)[:k]].sum())
    precision = recall = hits / k
    return 0.0 if hits == 0 else 2 * precision * recall / (precision + recall)
