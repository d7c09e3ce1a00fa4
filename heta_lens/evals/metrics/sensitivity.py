"""Sensitivity of an attribution to Gaussian noise on the input embeddings.

Noise model (our reading of docs/evaluation.md, stated here because the paper gives no δ):
each distinct token id v of the prompt gets one noise vector ε_v ~ N(0, (δ·‖e_v‖)²/d · I), so
that ‖ε_v‖ ≈ δ‖e_v‖ (δ = 0.05 by default), added to its embedding wherever the model embeds v
while :func:`embedding_noise` is active. The noise is attached to the embedding module's output
(a PyTorch forward hook on the embedding module), not to a hook point, so every forward a
method runs (HVPs through replaced embeddings, prefix-cached masked reruns, batched occlusion
copies) sees the same noised embeddings; repeated tokens share their noise. The noise is part
of the token's embedding: it is added before ``hook_embed``, so a method that replaces
``hook_embed`` (a masked row, an IG path point) replaces the noised value. Runs under the
``legacy`` protocol keep the placement they were stored with: on a TransformerBridge the noise
was added after ``hook_embed``, on top of replaced values (masked rows were not zero, HVPs ran
at x + 2ε, and the prefix-KV self-check failed and fell back to full reruns); on a
HookedTransformer the two placements are identical.

sensitivity = mean over context tokens of the standard deviation (over K noise draws, ddof=1)
of the token's *normalised* score (:func:`normalize_attribution`: negatives clamped, sum 1).
A constant attribution has sensitivity 0; lower is more stable.
"""

from contextlib import AbstractContextManager

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from heta_lens._typing import typechecked
from heta_lens.evals.metrics.soft import normalize_attribution
from heta_lens.hooks import ModelAdapter


@typechecked
def token_noise(
    model: nn.Module,
    ids: Int[Tensor, " pos"],
    *,
    delta: float,
    generator: torch.Generator,
) -> tuple[Int[Tensor, " n_ids"], Float[Tensor, "n_ids d_model"]]:
    """One noise vector per distinct id of ``ids`` (sorted), scaled to δ‖e_v‖ in expectation."""
    if delta < 0:
        raise ValueError(f"delta must be >= 0; got {delta}")
    adapter = ModelAdapter(model)
    unique = torch.unique(ids.cpu())
    with torch.no_grad():
        rows = adapter.embed(unique[None])[0].double().cpu()
    eps = torch.randn(rows.shape, generator=generator, dtype=torch.float64)
    scale = delta * rows.norm(dim=-1, keepdim=True) / rows.shape[-1] ** 0.5
    return unique, (scale * eps).to(dtype=adapter.dtype)


def embedding_noise(
    model: nn.Module,
    ids: Int[Tensor, " n_ids"],
    noise: Float[Tensor, "n_ids d_model"],
    *,
    replaceable: bool = True,
) -> AbstractContextManager[None]:
    """Add ``noise[j]`` to the embedding of token ``ids[j]`` in every forward inside the block
    (:meth:`heta_lens.hooks.ModelAdapter.token_embedding_offsets`; removed on exit, also when
    the block raises). ``replaceable=False`` is the ``legacy`` protocol's placement on a
    TransformerBridge (noise also added on top of replaced ``hook_embed`` values)."""
    return ModelAdapter(model).token_embedding_offsets(ids, noise, replaceable=replaceable)


def sensitivity(draws: Float[Tensor, "draw ctx"]) -> float:
    """Mean over tokens of the std over draws of the normalised scores (module docstring).

    Raises:
        ValueError: Fewer than 2 draws.

    Examples:
        >>> sensitivity(torch.ones(3, 4))
        0.0
    """
    if draws.shape[0] < 2:
        raise ValueError(f"sensitivity needs at least 2 draws; got {draws.shape[0]}")
    normalised = torch.stack([normalize_attribution(row) for row in draws.double()])
    return float(normalised.std(dim=0, correction=1).mean())
