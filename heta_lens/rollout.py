"""The gate's arithmetic once the flow into each head is known (HETA §1).

Shared by the two ways of reading the attention: one capture of every layer
(:mod:`heta_lens.gate`) and layer by layer (:mod:`heta_lens.gate_layers`), so both give the
same gate. Notation as :func:`heta_lens.gate.gate_from_capture`.
"""

from typing import get_args

import einops
import torch
from jaxtyping import Float
from torch import Tensor

from heta_lens.config import GateMode

GATE_MODES: tuple[str, ...] = get_args(GateMode)


def layer_value_norms(
    v: Float[Tensor, "pos head_index d_head"], W_O: Float[Tensor, "head_index d_head d_model"]
) -> Float[Tensor, "head_index pos"]:
    """‖V_i^{(h)} W_O^{(h)}‖₁ for every head and position of one layer."""
    out = einops.einsum(v, W_O, "pos head d_head, head d_head d_model -> head pos d_model")
    return out.abs().sum(-1)


def residual_mixing(
    pattern: Float[Tensor, "layer head_index query_pos key_pos"],
) -> Float[Tensor, "layer query_pos key_pos"]:
    """R_l = 0.5·mean_h A_l + 0.5·I (Abnar & Zuidema's residual-aware mixing)."""
    n = pattern.shape[-1]
    eye = torch.eye(n, dtype=pattern.dtype, device=pattern.device)
    return 0.5 * pattern.mean(dim=1) + 0.5 * eye


def rollout_rows(
    mixing: Float[Tensor, "layer query_pos key_pos"], *, t: int
) -> Float[Tensor, "layer key_pos"]:
    """Row t of U_{>l} = R_{L-1} ⋯ R_{l+1} for every l (row ``L-1`` is e_t)."""
    n_layers, n = mixing.shape[0], mixing.shape[-1]
    rows = torch.zeros(n_layers, n, dtype=mixing.dtype, device=mixing.device)
    u = torch.zeros(n, dtype=mixing.dtype, device=mixing.device)
    u[t] = 1.0
    for layer in range(n_layers - 1, -1, -1):
        rows[layer] = u
        u = u @ mixing[layer]
    return rows


def terms_from_flow(
    flow: Float[Tensor, "layer head_index ctx"] | None,
    norms: Float[Tensor, "layer head_index ctx"],
    mixing: Float[Tensor, "layer ctx ctx"] | None,
    *,
    mode: GateMode,
) -> Float[Tensor, "layer head_index ctx"]:
    """:func:`gate_terms` from the flow into each head, Φ^{(l,h)}(·→t) over positions 0..t
    (``None`` for ``"uniform"``), the value norms N and, for ``"full_rollout"``, the mixings
    R_l restricted to 0..t (the rows below each layer are rolled down through them)."""
    if mode == "uniform":
        return norms
    if flow is None:
        raise ValueError(f"gate mode {mode!r} needs the flow into each head")
    weighted = flow * norms
    if mode != "full_rollout":
        return weighted
    if mixing is None:
        raise ValueError("gate mode 'full_rollout' needs the mixings R_l")
    out = torch.empty_like(weighted)
    below = torch.eye(weighted.shape[-1], dtype=weighted.dtype, device=weighted.device)
    for layer in range(weighted.shape[0]):
        out[layer] = weighted[layer] @ below
        below = mixing[layer] @ below
    return out


def shares(raw: Tensor, *, what: str = "the target position") -> Tensor:
    total = raw.sum()
    if not bool(total > 0):
        raise ValueError(f"gate is undefined: no attention-value flow reaches {what}")
    return raw / total


def query_indicator(ctx: int, queries: tuple[int, ...], *, like: Tensor) -> Float[Tensor, " ctx"]:
    """The gate when no attention layer mixes positions: the indicator of the last query."""
    out = torch.zeros(ctx, dtype=like.dtype, device=like.device)
    out[queries[-1]] = 1.0
    return out


def gate_from_terms(
    terms: list[Tensor], *, ctx: int, queries: tuple[int, ...], n: int
) -> Float[Tensor, " ctx"]:
    """:func:`objective_gate` from each query's :func:`gate_terms` (``n`` run positions)."""
    if queries == (ctx - 1,) and n == ctx:
        return shares(terms[0].sum(dim=(0, 1)))
    raw = torch.stack([shares(term.sum(dim=(0, 1)))[:ctx] for term in terms]).sum(0)
    return shares(raw, what="the context")


def gate_by_head_from_terms(
    terms: list[Tensor], *, ctx: int, n_layers: int
) -> Float[Tensor, "layer head_index ctx"]:
    """:func:`objective_gate_by_head` from each query's :func:`gate_terms` (layers above the
    terms' are 0)."""
    per_query = [shares(term)[..., :ctx] for term in terms]
    total = shares(torch.stack(per_query).sum(0), what="the context")
    out = torch.zeros((n_layers, *total.shape[1:]), dtype=total.dtype, device=total.device)
    out[: total.shape[0]] = total
    return out


NO_HEAD = (
    "gate_by_head is undefined here: no attention layer mixes positions before the "
    "metric's hook point, so its gate is the indicator of its position and no head "
    "carries it"
)
