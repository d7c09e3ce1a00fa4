"""Attention internals of one forward, handed over one layer at a time and not kept.

:func:`stream_attention` runs one no-grad forward and calls ``visit`` with each layer's
pattern, values (expanded to query heads, as the attention mixes them) and ``W_O`` as soon as
that layer's hook points have fired; the hooks keep nothing after the call. A caller that
reduces each layer (the gate, :mod:`heta_lens.gate_layers`) so holds one layer's
``[head_index, query_pos, key_pos]`` pattern at a time instead of every layer's (30 layers ×
9 heads × 2,048² floats ≈ 4.5 GB in float32 for SmolLM2-135M at 2,048 tokens).
:meth:`heta_lens.hooks.ModelAdapter.capture_attention` is this stream collected into one
:class:`~heta_lens.hooks.AttentionCapture`.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor

from heta_lens.hooks import names
from heta_lens.hooks.attention_check import check_layer_output

if TYPE_CHECKING:
    from heta_lens.hooks.adapter import ModelAdapter


@dataclass(frozen=True, kw_only=True)
class LayerAttention:
    """Attention internals of one layer (batch of one).

    Attributes:
        layer: The layer's index.
        pattern: Attention probabilities, ``[head_index, query_pos, key_pos]``.
        v: Value vectors expanded to query heads, ``[pos, head_index, d_head]`` (a
            HookedTransformer's ``clip_qkv`` clamp applied).
        W_O: The layer's output projection, ``[head_index, d_head, d_model]``.
    """

    layer: int
    pattern: Float[Tensor, "head_index query_pos key_pos"]
    v: Float[Tensor, "pos head_index d_head"]
    W_O: Float[Tensor, "head_index d_head d_model"]


LayerVisit = Callable[[LayerAttention], None]
"""Called once per layer, in the order the layers complete (layer order)."""


def stream_attention(
    adapter: "ModelAdapter", tokens: Int[Tensor, " pos"], visit: LayerVisit
) -> None:
    """One no-grad forward of ``tokens``; ``visit`` gets every layer's :class:`LayerAttention`.

    On a ``TransformerBridge`` each layer is checked against its attention output
    (:func:`heta_lens.hooks.attention_check.check_layer_output`) before it is visited.

    Raises:
        ValueError: The hook points HETA reads did not fire, or (bridge) they do not reproduce
            the attention the model applies; the message names the architecture.
    """
    model = adapter.model
    bridge = adapter.kind == "bridge"
    clip = getattr(model.cfg, "clip_qkv", None) if adapter.kind == "hooked" else None
    W_O = model.W_O.detach()
    per_layer = 3 if bridge else 2
    pending: dict[int, dict[str, Tensor]] = {}
    done: set[int] = set()

    def finish(layer: int, acts: dict[str, Tensor]) -> None:
        v = acts["v"]
        if clip is not None:  # TL clamps Q/K/V after hook_v (OLMo, OLMoE): read what is mixed
            v = v.clamp(min=-clip, max=clip)
        if v.shape[-2] != adapter.n_heads:
            v = einops.repeat(
                v,
                "pos kv d_head -> pos (kv group) d_head",
                group=adapter.n_heads // adapter.n_kv_heads,
            )
        if bridge:
            check_layer_output(
                layer=layer,
                pattern=acts["pattern"],
                v=v,
                W_O=W_O[layer],
                b_O=model.blocks[layer].attn.b_O,
                output=acts["out"],
                architecture=adapter.architecture,
            )
        visit(LayerAttention(layer=layer, pattern=acts["pattern"], v=v, W_O=W_O[layer]))
        done.add(layer)

    def keeper(layer: int, key: str) -> Callable[..., Tensor]:
        def keep(act: Tensor, hook: object) -> Tensor:  # noqa: ARG001
            acts = pending.setdefault(layer, {})
            acts[key] = act.detach()[0]
            if len(acts) == per_layer:
                finish(layer, pending.pop(layer))
            return act

        return keep

    points = [(names.attn_pattern, "pattern"), (names.attn_v, "v")]
    if bridge:
        points.append((names.attn_out, "out"))
    wanted = [
        (name(layer), layer, key) for layer in range(adapter.n_layers) for name, key in points
    ]
    hooks = [(name, keeper(layer, key)) for name, layer, key in wanted]
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        if bridge:
            model(tokens[None].to(adapter.device), logits_to_keep=1)
        else:
            model(tokens[None].to(adapter.device), return_type=None)
    missing = [
        name
        for name, layer, key in wanted
        if layer not in done and key not in pending.get(layer, {})
    ]
    if missing:
        raise ValueError(
            f"unsupported architecture {adapter.architecture}: hook points {missing[:2]} did "
            "not fire; HETA needs per-head attention patterns and value vectors"
        )
