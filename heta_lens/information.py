"""Information contribution I_i (HETA §3): KL(P_orig ‖ P_masked_i) at the target position."""

from collections.abc import Callable

import torch
from jaxtyping import Float
from torch import Tensor, nn
from tqdm.auto import tqdm

from heta_lens._typing import TokensLike, typechecked
from heta_lens.hooks import ModelAdapter, preserved_model_state
from heta_lens.inputs import Prepared, prepare

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
        return torch.stack([mask(embeds, i).to(embeds.dtype) for i in range(ctx)])
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


@typechecked
def information_gain(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: int | None = None,
    mask: str | MaskFn = "zero",
    chunk_size: int = 16,
) -> Float[Tensor, " ctx"]:
    """I_i = KL(P_orig(·|x_<target) ‖ P_masked_i(·|x_<target)) for every context token i.

    One masked copy of the prefix per context token (token i's input embedding replaced), run
    as batched forwards of ``chunk_size`` copies that unembed only the last position. The
    unmasked distribution goes through the same embedding-replacement path; a masked copy equal
    to the input (a mask that changes nothing there) is not rerun and gets exactly 0.

    Args:
        model: A ``HookedTransformer`` or ``TransformerBridge``.
        tokens: Token ids containing the target, or a string.
        target: Index of the explained token (default: last).
        mask: ``"zero"`` (default: embedding set to 0), ``"mean"`` (mean input embedding over
            the vocabulary), ``"token:<id>"`` (embedding of that token) or a :data:`MaskFn`.
        chunk_size: Masked copies per forward.

    Returns:
        I, shape ``[ctx]``, non-negative (nats).

    Raises:
        ValueError: Bad tokens/target or unknown mask scheme.

    Examples:
        >>> from heta_lens.testing import tiny_bridge
        >>> info = information_gain(tiny_bridge(), torch.tensor([1, 5, 7, 3]))
        >>> info.shape, bool((info >= 0).all())
        (torch.Size([3]), True)
    """
    if not callable(mask) and not isinstance(mask, str):
        raise TypeError(f"mask must be a scheme name or a callable; got {type(mask).__name__}")
    adapter = ModelAdapter(model)
    req = prepare(adapter, tokens, target)
    with preserved_model_state(model):
        return compute_information(adapter, req, mask=mask, chunk_size=chunk_size)


def compute_information(
    adapter: ModelAdapter,
    req: Prepared,
    *,
    mask: str | MaskFn,
    chunk_size: int = 16,
    progress: bool = False,
) -> Float[Tensor, " ctx"]:
    """:func:`information_gain` on an already validated request (inside the state guard)."""
    ctx = int(req.prefix.numel())
    with torch.no_grad():
        x = adapter.embed(req.prefix[None])[0]
        replacements = mask_rows(adapter, x, mask)
        log_p = adapter.last_log_probs(req.prefix[None], x[None])[0]
        out = torch.empty(ctx, dtype=x.dtype, device=x.device)
        starts = range(0, ctx, chunk_size)
        for start in tqdm(starts, desc="masked reruns", unit="chunk", disable=not progress):
            idx = torch.arange(start, min(start + chunk_size, ctx), device=x.device)
            # A "masked" copy identical to the input is the input: its KL is exactly 0 and it
            # needs no forward (batch composition alone would otherwise leave ~1e-16 round-off).
            idx_changed = idx[(replacements[idx] != x[idx]).any(-1)]
            out[idx] = 0.0
            if idx_changed.numel() == 0:
                continue
            batch = x.expand(idx_changed.numel(), -1, -1).clone()
            batch[torch.arange(idx_changed.numel()), idx_changed] = replacements[idx_changed]
            ids = req.prefix[None].expand(idx_changed.numel(), -1)
            out[idx_changed] = kl_divergence(log_p, adapter.last_log_probs(ids, batch))
    return out
