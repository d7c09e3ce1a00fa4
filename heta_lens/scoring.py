"""How HETA's components are combined into one score (HETA §4)."""

import torch
from jaxtyping import Float
from torch import Tensor

from heta_lens.config import Normalization, SinkPolicy


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


def combine(
    gate: Float[Tensor, " ctx"],
    curvature: Float[Tensor, " ctx"] | None,
    information: Float[Tensor, " ctx"] | None,
    *,
    beta: float,
    gamma: float,
) -> Float[Tensor, " ctx"]:
    """Attr = gate · (β·S + γ·I); a missing term counts as 0; with both missing the bracket is 1."""
    if curvature is None and information is None:
        return gate.clone()
    bracket = torch.zeros_like(gate)
    if curvature is not None:
        bracket = bracket + beta * curvature
    if information is not None:
        bracket = bracket + gamma * information
    return gate * bracket
