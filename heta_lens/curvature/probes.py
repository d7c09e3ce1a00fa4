"""Rademacher probes of the Hutchinson estimates, drawn from a private generator."""

import torch
from jaxtyping import Float
from torch import Tensor

from heta_lens.hooks import ModelAdapter


def rademacher_probes(
    n_probes: int, ctx: int, d_model: int, *, generator: torch.Generator, dtype: torch.dtype
) -> Float[Tensor, "n_probes ctx d_model"]:
    """i.i.d. ±1 entries drawn from ``generator`` (the global RNG is never touched)."""
    bits = torch.randint(0, 2, (n_probes, ctx, d_model), generator=generator)
    return (bits * 2 - 1).to(dtype)


def default_generator(generator: torch.Generator | None) -> torch.Generator:
    """``generator``, or a fresh one seeded with 0 (so calls without one are deterministic)."""
    return generator if generator is not None else torch.Generator().manual_seed(0)


def resolve_probes(
    adapter: ModelAdapter,
    ctx: int,
    *,
    n_probes: int,
    probes: Tensor | None,
    generator: torch.Generator,
) -> Float[Tensor, "m ctx d_model"]:
    """Explicit ``probes`` validated, or ``n_probes`` Rademacher probes drawn from ``generator``.

    Raises:
        TypeError: Non-floating ``probes``.
        ValueError: ``probes`` not of shape ``[m, ctx, d_model]``.
    """
    if probes is None:
        probes = rademacher_probes(
            n_probes, ctx, adapter.d_model, generator=generator, dtype=adapter.dtype
        )
    elif not probes.dtype.is_floating_point:
        raise TypeError(f"probes must be a floating tensor; got dtype {probes.dtype}")
    if probes.ndim != 3 or tuple(probes.shape[1:]) != (ctx, adapter.d_model):
        raise ValueError(
            f"probes must have shape [m, ctx={ctx}, d_model={adapter.d_model}]; "
            f"got {tuple(probes.shape)}"
        )
    return probes.to(device=adapter.device, dtype=adapter.dtype)
