"""How HETA's components are combined into one score (HETA §4, and the mixes of issue 25).

The paper's score is additive, ``G·(β·S' + γ·I')`` (:func:`combine` with ``mix="additive"``).
Two other mixes of the same normalised terms are available (``HetaConfig.mix``; registry
entries ``heta_geo`` and ``heta_rankmix``): the weighted geometric mean and the weighted sum of
rank terms (:func:`rank_term`). Both are defined in :func:`combine`.
"""

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from heta_lens.config import Mix, Normalization, SinkPolicy


def gate_term(gate: Float[Tensor, " ctx"], *, sink: SinkPolicy) -> Float[Tensor, " ctx"]:
    """The gate as it multiplies the score.

    ``"keep"``: the gate itself. ``"exclude"``: position 0 (the attention sink) set to 0 and
    the rest renormalised to sum 1; with a single context token nothing is excluded.
    """
    if sink == "keep" or gate.numel() == 1:
        return gate
    out = gate.clone()
    out[0] = 0.0
    total = out.sum()
    return out / total if bool(total > 0) else out


def normalize(values: Float[Tensor, " ctx"], how: Normalization) -> Float[Tensor, " ctx"]:
    """Put a non-negative component on a common scale: divide by its sum or max, or not at all.

    An all-zero component stays all zero.
    """
    if how == "none":
        return values
    scale = values.sum() if how == "sum" else values.max()
    return values / scale if bool(scale > 0) else torch.zeros_like(values)


def rank_term(
    values: Float[Tensor, " ctx"], support: Bool[Tensor, " ctx"]
) -> Float[Tensor, " ctx"]:
    """A component's ranks over ``support`` as a distribution, with its lowest tie group at 0.

    Over the n positions in ``support``: r_i = average rank of ``values[i]`` (1..n, ties share
    their mean rank), ρ_i = r_i − r_min (r_min the rank of the lowest tie group, so the
    component's least-evidence tokens get 0, as a zero of a sum-normalised term does), then
    ρ / Σρ. Positions outside ``support`` get 0; if every ρ is 0 (a constant component, or an
    empty support) the result is all zero, so a constant component contributes nothing.
    Invariant under any strictly increasing transform of ``values``.

    Examples:
        >>> rank_term(torch.tensor([5.0, 0.3, 9.0, 0.3]), torch.tensor([True] * 4))
        tensor([0.3750, 0.0000, 0.6250, 0.0000])
    """
    out = torch.zeros_like(values)
    inside = values[support]
    if inside.numel() == 0:
        return out
    _, inverse, counts = torch.unique(inside, sorted=True, return_inverse=True, return_counts=True)
    below = torch.cumsum(counts, 0) - counts  # positions strictly below each tie group
    mean_rank = below.to(values.dtype) + (counts.to(values.dtype) - 1) / 2  # 0-based
    rho = mean_rank[inverse] - mean_rank[0]
    total = rho.sum()
    if bool(total > 0):
        out[support] = rho / total
    return out


def combine(
    gate: Float[Tensor, " ctx"],
    curvature: Float[Tensor, " ctx"] | None,
    information: Float[Tensor, " ctx"] | None,
    *,
    beta: float,
    gamma: float,
    mix: Mix = "additive",
) -> Float[Tensor, " ctx"]:
    """Attr = G · bracket(S', I'), the bracket chosen by ``mix``; with both terms missing it is 1.

    - ``"additive"`` (the paper): β·S' + γ·I'; a missing term counts as 0.
    - ``"geometric"``: (S'^β · I'^γ)^(1/(β+γ)), the weighted geometric mean (homogeneous of
      degree 1: equal S' and I' give S'); a missing term counts as 1 (the identity of the
      product), so the mean runs over the present terms and their weights.
    - ``"rank"``: β·R(S') + γ·R(I'), R = :func:`rank_term` over the positions the gate keeps
      (G_i > 0); a missing term counts as 0.

    Raises:
        ValueError: ``"geometric"`` with zero total weight on the present terms, or an
            unknown ``mix``.
    """
    if curvature is None and information is None:
        return gate.clone()
    present = [(w, t) for w, t in ((beta, curvature), (gamma, information)) if t is not None]
    if mix == "additive":
        bracket = torch.zeros_like(gate)
        for weight, term in present:
            bracket = bracket + weight * term
    elif mix == "geometric":
        total = sum(weight for weight, _ in present)
        if total <= 0:
            raise ValueError("the geometric mix needs beta + gamma > 0 over the present terms")
        bracket = torch.ones_like(gate)
        for weight, term in present:
            bracket = bracket * term.pow(weight / total)
    elif mix == "rank":
        support = gate > 0
        bracket = torch.zeros_like(gate)
        for weight, term in present:
            bracket = bracket + weight * rank_term(term, support)
    else:
        raise ValueError(f"unknown mix {mix!r}; valid: additive, geometric, rank")
    return gate * bracket
