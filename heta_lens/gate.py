"""Semantic transition gate M_T (HETA §1): target-conditioned attention–value rollout."""

from functools import partial

import einops
import torch
from jaxtyping import Float
from torch import Tensor, nn

from heta_lens._typing import TokensLike, typechecked
from heta_lens.config import GateMode
from heta_lens.gate_layers import LayerwiseAttention, layerwise_gate, layerwise_gate_by_head
from heta_lens.hooks import AttentionCapture, ModelAdapter
from heta_lens.inputs import Prepared
from heta_lens.rollout import (
    GATE_MODES,
    NO_HEAD,
    gate_by_head_from_terms,
    gate_from_terms,
    layer_value_norms,
    query_indicator,
    residual_mixing,
    rollout_rows,
    shares,
    terms_from_flow,
)
from heta_lens.targets import TargetLike, on_request


def value_norms(capture: AttentionCapture) -> Float[Tensor, "layer head_index pos"]:
    """‖V_i^{(l,h)} W_O^{(l,h)}‖₁ for every layer, head and position (one layer at a time)."""
    return torch.stack(
        [layer_value_norms(v_l, wo_l) for v_l, wo_l in zip(capture.v, capture.W_O, strict=True)]
    )


def gate_terms(
    capture: AttentionCapture, *, t: int | None = None, mode: GateMode = "rollout"
) -> Float[Tensor, "layer head_index ctx"]:
    """Each head's unnormalised term of the gate at query position t (see
    :func:`gate_from_capture` for the notation): T^{(l,h)}[i] with M[i] ∝ Σ_{l,h} T^{(l,h)}[i].

    - ``"rollout"``: T^{(l,h)}[i] = Φ^{(l,h)}(i→t) · N^{(l,h)}_i.
    - ``"attention"``: T^{(l,h)}[i] = A^{(l,h)}[t, i] · N^{(l,h)}_i.
    - ``"full_rollout"``: T^{(l,h)}[i] = Σ_k w^{(l,h)}_k (R_{l-1} ⋯ R_0)[k, i], the flow
      through head (l,h) rolled down to the input tokens. The mixings R above and below l
      average over all heads; the head is where the flow enters a value path.
    - ``"uniform"``: T^{(l,h)}[i] = N^{(l,h)}_i.

    Raises:
        ValueError: Unknown mode.
    """
    pattern = capture.pattern
    n = pattern.shape[-1]
    t = n - 1 if t is None else t
    pattern = pattern[:, :, : t + 1, : t + 1]
    norms = value_norms(capture)[:, :, : t + 1]
    if mode not in GATE_MODES:
        raise ValueError(f"unknown gate mode {mode!r}")
    if mode == "uniform":
        return terms_from_flow(None, norms, None, mode=mode)
    if mode == "attention":
        return terms_from_flow(pattern[:, :, t, :], norms, None, mode=mode)
    mixing = residual_mixing(pattern)
    rows = rollout_rows(mixing, t=t)
    flow = einops.einsum(rows, pattern, "layer q, layer head q k -> layer head k")
    return terms_from_flow(flow, norms, mixing, mode=mode)


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

    M is normalised to sum 1. A position with no causal path to t gets exactly 0. Each head's
    term before the sum is :func:`gate_terms` (normalised: :func:`gate_by_head_from_capture`).

    Args:
        capture: Attention internals of the prefix ``tokens[:target]``.
        t: Query position (default: the last one, ``target - 1``).
        mode: Which reading of Φ.

    Returns:
        M, shape ``[t + 1]``, non-negative, summing to 1.

    Raises:
        ValueError: Unknown mode, or no flow at all reaches t (all-zero values).
    """
    return shares(gate_terms(capture, t=t, mode=mode).sum(dim=(0, 1)))


def gate_by_head_from_capture(
    capture: AttentionCapture, *, t: int | None = None, mode: GateMode = "rollout"
) -> Float[Tensor, "layer head_index ctx"]:
    """The gate split by head: :func:`gate_terms` with the gate's normaliser, so that its sum
    over (layer, head) is :func:`gate_from_capture` (up to round-off).

    Raises:
        ValueError: As :func:`gate_from_capture`.
    """
    return shares(gate_terms(capture, t=t, mode=mode))


def _below(capture: AttentionCapture, layers: int | None) -> AttentionCapture:
    """The first ``layers`` attention layers of ``capture`` (all of them for ``None``)."""
    if layers is None or layers >= capture.pattern.shape[0]:
        return capture
    return AttentionCapture(
        pattern=capture.pattern[:layers], v=capture.v[:layers], W_O=capture.W_O[:layers]
    )


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
    if layers == 0:
        return query_indicator(ctx, queries, like=capture.pattern)
    capture = _below(capture, layers)
    terms = [gate_terms(capture, t=t, mode=mode) for t in queries]
    return gate_from_terms(terms, ctx=ctx, queries=queries, n=capture.pattern.shape[-1])


def objective_gate_by_head(
    capture: AttentionCapture,
    *,
    ctx: int,
    queries: tuple[int, ...],
    layers: int | None = None,
    mode: GateMode = "rollout",
) -> Float[Tensor, "layer head_index ctx"]:
    """:func:`objective_gate` split by head: its sum over (layer, head) is that gate.

    Σ_{t ∈ queries} of each query's :func:`gate_by_head_from_capture` restricted to
    positions < ctx, with the objective gate's normaliser. Every layer of the capture has a
    row; the layers at or above a metric's hook point (``layers``) carry nothing and are 0.

    Raises:
        ValueError: As :func:`gate_from_capture`, or ``layers = 0``: no attention layer lies
            below the hook point, the gate is the indicator of the query position and no head
            carries it.
    """
    if layers == 0:
        raise ValueError(NO_HEAD)
    below = _below(capture, layers)
    terms = [gate_terms(below, t=t, mode=mode) for t in queries]
    return gate_by_head_from_terms(terms, ctx=ctx, n_layers=capture.pattern.shape[0])


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
    return layerwise_gate(
        LayerwiseAttention(adapter, req.run_ids),
        ctx=req.target,
        queries=goal.gate_queries(req.target),
        layers=goal.gate_layers,
        mode=mode,
    )


@typechecked
def semantic_gate_by_head(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: TargetLike = None,
    mode: GateMode = "rollout",
) -> Float[Tensor, "layer head_index ctx"]:
    """:func:`semantic_gate` split by attention head: entry [l, h, i] is head (l, h)'s term
    of M_T[i] (:func:`gate_terms`, same normaliser), so summing over (layer, head) gives the
    gate; summing over heads gives each layer's share. GQA: h is the query head.

    Raises:
        TypeError: Unsupported model or non-integer tokens.
        ValueError: As :func:`semantic_gate`, or a metric read before the first attention
            layer (:func:`objective_gate_by_head`).

    Examples:
        >>> from heta_lens.testing import tiny_bridge
        >>> by_head = semantic_gate_by_head(tiny_bridge(), torch.tensor([1, 5, 7, 3]), target=3)
        >>> by_head.shape, round(float(by_head.sum()), 6)
        (torch.Size([2, 4, 3]), 1.0)
    """
    return on_request(model, tokens, target, partial(request_gate_by_head, mode=mode))


def request_gate_by_head(
    adapter: ModelAdapter, req: Prepared, *, mode: GateMode
) -> Float[Tensor, "layer head_index ctx"]:
    """The per-head gate of a validated request (:func:`objective_gate_by_head`)."""
    goal = req.goal
    return layerwise_gate_by_head(
        LayerwiseAttention(adapter, req.run_ids),
        ctx=req.target,
        queries=goal.gate_queries(req.target),
        layers=goal.gate_layers,
        mode=mode,
    )
