"""Rademacher probes of the Hutchinson estimates, drawn from a private generator.

Probes (and the low-rank sketch, drawn from the same generator) are drawn on the CPU and then
moved to the model's device, so a seed gives the same probes on every device: a CUDA run and
a CPU run of the same model differ by round-off only.
"""

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
    """``generator``, or a fresh CPU one seeded with 0 (so calls without one are
    deterministic).

    Raises:
        ValueError: ``generator`` is not a CPU generator (probes are drawn on the CPU whatever
            the model's device, so that they do not depend on it).
    """
    if generator is None:
        return torch.Generator().manual_seed(0)
    if generator.device.type != "cpu":
        raise ValueError(
            f"generator must be a CPU torch.Generator (probes are drawn on the CPU and moved "
            f"to the model's device, the same on every device); got one on {generator.device}"
        )
    return generator


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
