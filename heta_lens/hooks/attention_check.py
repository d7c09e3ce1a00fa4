"""Self-check that the attention HETA reads is the attention the model applies.

The gate reads each layer's pattern (``hook_pattern``), values (``hook_v``) and ``W_O``. A
``TransformerBridge`` either re-implements attention around the wrapped Hugging Face module
(firing ``hook_pattern`` on the weights it then applies) or delegates to it (firing
``hook_pattern`` on the weights HF returns), one adapter per architecture. If the hooked pattern
were not the applied one (a sliding-window mask, soft cap or gate applied after the hook, or
weights HF returns before masking) or ``W_O`` came in another head layout, the gate would be
silently wrong. So every capture is checked against the attention module's own output:
``Σ_h A_h V_h W_O^h + b_O`` must reproduce ``blocks.{l}.attn.hook_out`` (the attention output
before any post-attention norm, which Gemma 2 and 3 apply outside attention). A
``HookedTransformer`` computes attention from the pattern it hooks by construction and is not
checked.
"""

import einops
import torch
from jaxtyping import Float
from torch import Tensor


def attn_output_tolerance(dtype: torch.dtype) -> float:
    """Largest max-|Δ| between the reconstructed and the actual attention output, relative to
    the output's largest entry, that counts as round-off.

    1000 machine epsilons of the model's dtype, capped at 0.05 for half precision. The pattern
    and values are the very tensors the model multiplies, so only the summation order differs
    (measured on the tiny models of every family in tests/unit/zoo_hf.py: ≤ 6e-16 relative in
    float64, 4e-7 in float32, 6e-3 in bfloat16); a mask, cap or head permutation the pattern
    does not show moves the output by O(1) relative.
    """
    return min(1e3 * torch.finfo(dtype).eps, 0.05)


def check_attention_outputs(
    *,
    pattern: Float[Tensor, "layer head_index query_pos key_pos"],
    v: Float[Tensor, "layer pos head_index d_head"],
    W_O: Float[Tensor, "layer head_index d_head d_model"],
    b_O: list[Tensor | None],
    outputs: Float[Tensor, "layer pos d_model"],
    architecture: str,
) -> None:
    """Raise unless every layer's ``Σ_h A·V·W_O (+ b_O)`` equals its attention output.

    Args:
        pattern: Hooked attention probabilities.
        v: Hooked values, expanded to query heads.
        W_O: The model's output projections.
        b_O: Each layer's output bias, ``[d_model]``, or ``None`` when it has none (the
            bridge's per-block ``attn.b_O``; its stacked ``b_O`` raises on bias-free models,
            differently in transformer-lens 3.9 and 4.x).
        outputs: Each layer's attention output as the model computed it.
        architecture: Named in the error.

    Raises:
        ValueError: A layer's reconstruction differs beyond :func:`attn_output_tolerance`.
    """
    for layer in range(pattern.shape[0]):
        check_layer_output(
            layer=layer,
            pattern=pattern[layer],
            v=v[layer],
            W_O=W_O[layer],
            b_O=b_O[layer],
            output=outputs[layer],
            architecture=architecture,
        )


def check_layer_output(
    *,
    layer: int,
    pattern: Float[Tensor, "head_index query_pos key_pos"],
    v: Float[Tensor, "pos head_index d_head"],
    W_O: Float[Tensor, "head_index d_head d_model"],
    b_O: Tensor | None,
    output: Float[Tensor, "pos d_model"],
    architecture: str,
) -> None:
    """Raise unless layer ``layer``'s ``Σ_h A·V·W_O (+ b_O)`` equals its attention ``output``
    (one layer of :func:`check_attention_outputs`).

    Raises:
        ValueError: The reconstruction differs beyond :func:`attn_output_tolerance`.
    """
    tolerance = attn_output_tolerance(output.dtype)
    z = einops.einsum(pattern, v, "head q k, k head d -> q head d")
    out = einops.einsum(z.to(W_O.dtype), W_O, "q head d, head d m -> q m")
    if b_O is not None:
        out = out + b_O.detach()
    actual = output.to(out.dtype)
    gap = float((out - actual).abs().max())
    scale = float(actual.abs().max().clamp_min(torch.finfo(actual.dtype).tiny))
    if not gap <= tolerance * scale:  # also catches NaN
        raise ValueError(
            f"unsupported architecture {architecture}: in layer {layer} the hooked attention "
            f"pattern, values and W_O do not reproduce the attention output (max |Δ| = "
            f"{gap:.3g}, {gap / scale:.3g} relative > {tolerance:.3g}): the pattern at "
            "hook_pattern is not the one the model applies (a mask, soft cap or gate after "
            "the hook?) or W_O is laid out in a way HETA's gate cannot read"
        )
