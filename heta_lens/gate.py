"""Semantic transition gate M_T (HETA §1): target-conditioned attention–value rollout."""

from functools import partial

import einops
import torch
from jaxtyping import Float
from torch import Tensor, nn

from heta_lens._typing import TokensLike, typechecked
from heta_lens.config import GateMode
from heta_lens.hooks import AttentionCapture, ModelAdapter
from heta_lens.inputs import Prepared
from heta_lens.targets import TargetLike, on_request


def value_norms(capture: AttentionCapture) -> Float[Tensor, "layer head_index pos"]:
    """‖V_i^{(l,h)} W_O^{(l,h)}‖₁ for every layer, head and position (one layer at a time)."""
    out = [
        einops.einsum(v_l, wo_l, "pos head d_head, head d_head d_model -> head pos d_model")
        .abs()
        .sum(-1)
        for v_l, wo_l in zip(capture.v, capture.W_O, strict=True)
    ]
    return torch.stack(out)


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


def gate_from_capture(
    capture: AttentionCapture, *, t: int | None = None, mode: GateMode = "rollout"
) -> Float[Tensor, " ctx"]:
    """The gate M over positions ``0..t`` from captured attention internals.

    With A^{(l,h)} the attention of head h in layer l, N^{(l,h)}_i = ‖V_i^{(l,h)} W_O^{(l,h)}‖₁,
    R_l = 0.5·mean_h A_l + 0.5·I and U_{>l} = R_{L-1} ⋯ R_{l+1} (identity for the last layer):

    - ``"rollout"`` (default): Φ^{(l,h)}(i→t) = Σ_j U_{>l}[t, j] A^{(l,h)}[j, i] — the flow from
      position i into head (l,h), composed with the rollout of the layers above l that ends
      at t; M[i] ∝ Σ_{l,h} Φ^{(l,h)}(i→t) · N^{(l,h)}_i.
    - ``"attention"``: Φ^{(l,h)}(i→t) = A^{(l,h)}[t, i] (direct edges into t only).
    - ``"full_rollout"``: the value-weighted flow into head (l,h) at position k,
      w_k = Σ_j U_{>l}[t, j] A^{(l,h)}[j, k] N^{(l,h)}_k, is also rolled down to input tokens:
      M[i] ∝ Σ_{l,h} Σ_k w_k (R_{l-1} ⋯ R_0)[k, i].
    - ``"uniform"``: constant flow, M[i] ∝ Σ_{l,h} N^{(l,h)}_i (the "uniform gate" ablation).

    M is normalised to sum 1. A position with no causal path to t gets exactly 0.

    Args:
        capture: Attention internals of the prefix ``tokens[:target]``.
        t: Query position (default: the last one, ``target - 1``).
        mode: Which reading of Φ.

    Returns:
        M, shape ``[t + 1]``, non-negative, summing to 1.

    Raises:
        ValueError: Unknown mode, or no flow at all reaches t (all-zero values).
    """
    pattern = capture.pattern
    n = pattern.shape[-1]
    t = n - 1 if t is None else t
    pattern = pattern[:, :, : t + 1, : t + 1]
    norms = value_norms(capture)[:, :, : t + 1]
    mixing = residual_mixing(pattern)
    if mode == "uniform":
        raw = norms.sum(dim=(0, 1))
    elif mode == "attention":
        raw = (pattern[:, :, t, :] * norms).sum(dim=(0, 1))
    elif mode in ("rollout", "full_rollout"):
        rows = rollout_rows(mixing, t=t)
        flow = einops.einsum(rows, pattern, "layer q, layer head q k -> layer head k")
        weighted = (flow * norms).sum(dim=1)  # [layer, pos]
        if mode == "rollout":
            raw = weighted.sum(dim=0)
        else:
            raw = torch.zeros_like(weighted[0])
            below = torch.eye(t + 1, dtype=pattern.dtype, device=pattern.device)
            for layer in range(pattern.shape[0]):
                raw = raw + weighted[layer] @ below
                below = mixing[layer] @ below
    else:
        raise ValueError(f"unknown gate mode {mode!r}")
    total = raw.sum()
    if not bool(total > 0):
        raise ValueError("gate is undefined: no attention-value flow reaches the target position")
    return raw / total


def objective_gate(
    capture: AttentionCapture,
    *,
    ctx: int,
    queries: tuple[int, ...],
    layers: int | None = None,
    mode: GateMode = "rollout",
) -> Float[Tensor, " ctx"]:
    """The gate of a target: rows ``queries`` of the rollout, restricted to positions < ctx.

    M ∝ Σ_{t ∈ queries} M_t[:ctx], each M_t = :func:`gate_from_capture` at t (over the run
    sequence the capture was taken on), normalised to sum 1: for one query t = ctx − 1 (a
    token, contrast or metric) that is M_t itself; for a span, the mean of its positions'
    gates restricted to the prompt and renormalised. ``layers`` keeps only the first
    ``layers`` attention layers (a metric's hook point: the rollout over the layers below
    it); with ``layers = 0`` no attention mixes positions before the hook, so M is the
    indicator of the query position.

    Raises:
        ValueError: As :func:`gate_from_capture`.
    """
    if layers is not None and layers < capture.pattern.shape[0]:
        if layers == 0:
            out = torch.zeros(ctx, dtype=capture.pattern.dtype, device=capture.pattern.device)
            out[queries[-1]] = 1.0
            return out
        capture = AttentionCapture(
            pattern=capture.pattern[:layers], v=capture.v[:layers], W_O=capture.W_O[:layers]
        )
    if queries == (ctx - 1,) and capture.pattern.shape[-1] == ctx:
        return gate_from_capture(capture, mode=mode)
    raw = torch.stack([gate_from_capture(capture, t=t, mode=mode)[:ctx] for t in queries]).sum(0)
    total = raw.sum()
    if not bool(total > 0):
        raise ValueError("gate is undefined: no attention-value flow reaches the context")
    return raw / total


@typechecked
def semantic_gate(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: TargetLike = None,
    mode: GateMode = "rollout",
) -> Float[Tensor, " ctx"]:
    """HETA's semantic transition gate M_T over the context of ``target``.

    Runs the prefix ``tokens[:target]`` once (no grad), captures every layer's attention pattern
    and value vectors (GQA: query head h reads kv head h // group) and ``W_O``, and evaluates
    :func:`gate_from_capture` at t = target − 1, the position whose logits predict the target.
    Another target kind (:mod:`heta_lens.targets`) uses its own rows and layers
    (:func:`objective_gate`).

    Args:
        model: A ``HookedTransformer`` or ``TransformerBridge``.
        tokens: Token ids ``[pos]``/``[1, pos]`` containing the target, or a string.
        target: Index of the explained token (default: last; negative counts from the end),
            or a target (:mod:`heta_lens.targets`).
        mode: Reading of the flow Φ (see :func:`gate_from_capture`).

    Returns:
        M_T, shape ``[ctx]`` = ``[target]``, non-negative, summing to 1.

    Raises:
        TypeError: Unsupported model or non-integer tokens.
        ValueError: Empty tokens, bad target, sequence longer than ``n_ctx``.

    Examples:
        >>> from heta_lens.testing import tiny_bridge
        >>> gate = semantic_gate(tiny_bridge(), torch.tensor([1, 5, 7, 3]), target=3)
        >>> gate.shape, round(float(gate.sum()), 6)
        (torch.Size([3]), 1.0)
    """
    return on_request(model, tokens, target, partial(request_gate, mode=mode))


def request_gate(adapter: ModelAdapter, req: Prepared, *, mode: GateMode) -> Float[Tensor, " ctx"]:
    """The gate of a validated request (its objective's query rows and layers)."""
    goal = req.goal
    return objective_gate(
        adapter.capture_attention(req.run_ids),
        ctx=req.target,
        queries=goal.gate_queries(req.target),
        layers=goal.gate_layers,
        mode=mode,
    )
