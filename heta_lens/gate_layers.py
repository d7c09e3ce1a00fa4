"""The semantic gate read layer by layer, never holding every layer's attention pattern.

:func:`heta_lens.gate.gate_terms` reads the gate off one :class:`~heta_lens.hooks.
AttentionCapture`, whose patterns ``[layer, head_index, pos, pos]`` are 30 × 9 × 2,048² floats
(≈ 4.5 GB in float32) for SmolLM2-135M at 2,048 tokens. The same terms need, from every layer
at once, only the head-mean mixings R_l = 0.5·mean_h A_l + 0.5·I (``[layer, pos, pos]``, a
factor n_heads smaller) and otherwise one layer's pattern at a time:

1. One streamed forward (:func:`heta_lens.hooks.attention_stream.stream_attention`) keeps
   R_l for every layer (``"rollout"`` and ``"full_rollout"`` only).
2. The rollout rows U_{>l}[t, ·] of every query t follow from the R_l (top layer down).
3. A second streamed forward reduces each layer's pattern against those rows as it passes:
   flow[l, j, h, k] = Σ_q U_{>l}[t_j, q] A^{(l,h)}[q, k] (for ``"attention"`` the row is
   e_t, which reads A^{(l,h)}[t, k]), and the value norms N^{(l,h)}_k.

The terms are then :func:`heta_lens.gate.terms_from_flow`, shared with the capture path, so
both give the same gate up to round-off (tested against the capture and the brute-force
oracle). Cost: one extra no-grad forward for the rollout modes.
"""

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor

from heta_lens.config import GateMode
from heta_lens.hooks import ModelAdapter
from heta_lens.hooks.attention_stream import LayerAttention, stream_attention
from heta_lens.rollout import (
    GATE_MODES,
    NO_HEAD,
    gate_by_head_from_terms,
    gate_from_terms,
    layer_value_norms,
    query_indicator,
    residual_mixing,
    rollout_rows,
    terms_from_flow,
)


class LayerwiseAttention:
    """Gate inputs of one run sequence, read by streamed forwards (see the module docstring).

    The mixings R_l are computed once and kept, and so are the terms of every (queries,
    layers, mode) asked for (a gate and its split by head share them).

    Args:
        adapter: The model surface.
        tokens: The run sequence, ``[pos]``.
    """

    def __init__(self, adapter: ModelAdapter, tokens: Int[Tensor, " pos"]) -> None:
        self.adapter = adapter
        self.tokens = tokens
        self.n = int(tokens.numel())
        self._mixing: Tensor | None = None
        self._terms: dict[tuple[object, ...], list[Tensor]] = {}

    def mixing(self) -> Float[Tensor, "layer query_pos key_pos"]:
        """R_l = 0.5·mean_h A_l + 0.5·I of every layer (one streamed forward, then kept)."""
        if self._mixing is None:
            store: list[Tensor] = []

            def keep(part: LayerAttention) -> None:
                if not store:
                    store.append(part.pattern.new_empty((self.adapter.n_layers, self.n, self.n)))
                store[0][part.layer] = residual_mixing(part.pattern[None])[0]

            stream_attention(self.adapter, self.tokens, keep)
            self._mixing = store[0]
        return self._mixing

    def flows(
        self, rows: Float[Tensor, "layer query key_pos"] | None, n_layers: int
    ) -> tuple[Float[Tensor, "layer query head_index key_pos"] | None, Tensor]:
        """``(flow, norms)`` of the first ``n_layers`` layers from one streamed forward:
        flow[l, j] = rows[l, j] @ A^{(l,h)} for every head h (``None`` without rows) and
        the value norms N ``[layer, head_index, pos]``."""
        flow: list[Tensor] = []
        norms: list[Tensor] = []

        def reduce(part: LayerAttention) -> None:
            if part.layer >= n_layers:
                return
            norms.append(layer_value_norms(part.v, part.W_O))
            if rows is not None:
                flow.append(einops.einsum(rows[part.layer], part.pattern, "j q, h q k -> j h k"))

        stream_attention(self.adapter, self.tokens, reduce)
        return (torch.stack(flow) if rows is not None else None), torch.stack(norms)

    def terms(
        self, queries: tuple[int, ...], *, layers: int | None, mode: GateMode
    ) -> list[Float[Tensor, "layer head_index ctx"]]:
        """:func:`heta_lens.gate.gate_terms` at every query t (over positions 0..t) of the
        first ``layers`` layers (all for ``None``).

        Raises:
            ValueError: Unknown mode.
        """
        if mode not in GATE_MODES:
            raise ValueError(f"unknown gate mode {mode!r}")
        key = (queries, layers, mode)
        if key not in self._terms:
            self._terms[key] = self._compute_terms(queries, layers=layers, mode=mode)
        return self._terms[key]

    def _compute_terms(
        self, queries: tuple[int, ...], *, layers: int | None, mode: GateMode
    ) -> list[Tensor]:
        n_layers = self.adapter.n_layers if layers is None else min(layers, self.adapter.n_layers)
        dtype, device = self.adapter.dtype, self.adapter.device
        rows: Tensor | None = None
        if mode != "uniform":
            rows = torch.zeros((n_layers, len(queries), self.n), dtype=dtype, device=device)
            for j, t in enumerate(queries):
                if mode == "attention":
                    rows[:, j, t] = 1.0
                else:
                    mixing_t = self.mixing()[:n_layers, : t + 1, : t + 1]
                    rows[:, j, : t + 1] = rollout_rows(mixing_t, t=t)
        flow, norms = self.flows(rows, n_layers)
        out = []
        for j, t in enumerate(queries):
            flow_t = None if flow is None else flow[:, j, :, : t + 1]
            mixing_t = None
            if mode == "full_rollout":
                mixing_t = self.mixing()[:n_layers, : t + 1, : t + 1]
            out.append(terms_from_flow(flow_t, norms[:, :, : t + 1], mixing_t, mode=mode))
        return out


def layerwise_gate(
    source: LayerwiseAttention,
    *,
    ctx: int,
    queries: tuple[int, ...],
    layers: int | None = None,
    mode: GateMode = "rollout",
) -> Float[Tensor, " ctx"]:
    """:func:`heta_lens.gate.objective_gate`, read layer by layer from ``source``.

    Raises:
        ValueError: As :func:`heta_lens.gate.objective_gate`.
    """
    if layers == 0:
        like = torch.empty(0, dtype=source.adapter.dtype, device=source.adapter.device)
        return query_indicator(ctx, queries, like=like)
    terms = source.terms(queries, layers=layers, mode=mode)
    return gate_from_terms(terms, ctx=ctx, queries=queries, n=source.n)


def layerwise_gate_by_head(
    source: LayerwiseAttention,
    *,
    ctx: int,
    queries: tuple[int, ...],
    layers: int | None = None,
    mode: GateMode = "rollout",
) -> Float[Tensor, "layer head_index ctx"]:
    """:func:`heta_lens.gate.objective_gate_by_head`, read layer by layer from ``source``.

    Raises:
        ValueError: As :func:`heta_lens.gate.objective_gate_by_head`.
    """
    if layers == 0:
        raise ValueError(NO_HEAD)
    terms = source.terms(queries, layers=layers, mode=mode)
    return gate_by_head_from_terms(terms, ctx=ctx, n_layers=source.adapter.n_layers)
