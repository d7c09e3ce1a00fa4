"""Masking primitives shared by HETA's information term, the baselines and the eval metrics.

What "masking token i" means (:func:`mask_rows`: the replacement embedding of each context
position under a scheme), copies of a sequence with one position masked (:func:`masked_copies`)
and the divergence they are compared with (:func:`kl_divergence`).
"""

from collections.abc import Callable

import torch
from jaxtyping import Float, Int
from torch import Tensor

from heta_lens.hooks import ModelAdapter

MaskFn = Callable[[Tensor, int], Tensor]
"""Custom mask: ``fn(embeddings [ctx, d_model], i) -> replacement row [d_model]`` for token i."""

MASK_SCHEMES = ("zero", "mean", "token:<id>")


def mask_rows(
    adapter: ModelAdapter, embeds: Float[Tensor, "ctx d_model"], mask: str | MaskFn
) -> Float[Tensor, "ctx d_model"]:
    """The replacement embedding for each context position under ``mask``.

    Raises:
        ValueError: Unknown scheme or a ``token:<id>`` outside the vocabulary.
    """
    ctx = embeds.shape[0]
    if callable(mask):
        return torch.stack([mask(embeds, i).to(embeds) for i in range(ctx)])
    if mask == "zero":
        return torch.zeros_like(embeds)
    if mask == "mean":
        return adapter.mean_embedding().expand(ctx, -1)
    if mask.startswith("token:"):
        try:
            token_id = int(mask.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"mask {mask!r}: expected 'token:<integer id>'") from None
        if not 0 <= token_id < adapter.d_vocab:
            raise ValueError(f"mask {mask!r}: token id outside [0, {adapter.d_vocab})")
        row = adapter.embed(torch.tensor([[token_id]], device=adapter.device))[0, 0]
        return row.expand(ctx, -1)
    raise ValueError(
        f"unknown mask scheme {mask!r}; valid: {', '.join(MASK_SCHEMES)} or a callable"
    )


def kl_divergence(
    log_p: Float[Tensor, " d_vocab"], log_q: Float[Tensor, "batch d_vocab"]
) -> Float[Tensor, " batch"]:
    """KL(p ‖ q_b) = Σ_v p_v (log p_v − log q_{b,v}) for each row b, clamped at 0.

    Clamping only removes round-off below zero: KL is non-negative by Gibbs' inequality.
    """
    return (log_p.exp() * (log_p - log_q)).sum(-1).clamp_min(0.0)


def masked_copies(
    x: Float[Tensor, "pos d_model"],
    replacements: Float[Tensor, "ctx d_model"],
    idx: Int[Tensor, " batch"],
    *,
    start: int = 0,
) -> Float[Tensor, "batch pos d_model"]:
    """Row b: ``x`` (which starts at context position ``start``) with position ``idx[b]``'s
    embedding replaced by ``replacements[idx[b]]``."""
    batch = x.expand(idx.numel(), -1, -1).clone()
    batch[torch.arange(idx.numel(), device=x.device), idx - start] = replacements[idx]
    return batch
