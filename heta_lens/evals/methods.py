"""Method names an eval accepts: registry names plus HETA weight variants ``name@beta=B``.

``heta@beta=0.2`` is the registered ``heta`` with β = 0.2 and γ = 1 − β = 0.8: the paper's
weight sweep keeps β + γ = 1. Any HETA-family method takes the suffix; the variant shares the
family's one run of S and I with every other family member of the same target.
"""

import math
import re
from typing import Any

from heta_lens.registry import MethodSpec, get_method

_VARIANT = re.compile(r"^(?P<base>[A-Za-z0-9_]+)@beta=(?P<beta>[0-9]*\.?[0-9]+)$")


def resolve_method(name: str) -> tuple[MethodSpec, Any]:
    """The registry entry behind ``name`` and the default config to run it with.

    Raises:
        ValueError: Unknown base name, a weight suffix on a non-HETA method, or β outside
            [0, 1].

    Examples:
        >>> spec, config = resolve_method("heta@beta=0.2")
        >>> spec.name, config.beta, round(config.gamma, 12)
        ('heta', 0.2, 0.8)
    """
    if "@" not in name:
        spec = get_method(name)
        return spec, spec.default_config
    match = _VARIANT.match(name)
    if match is None:
        raise ValueError(f"bad method variant {name!r}; expected NAME@beta=B with B in [0, 1]")
    spec = get_method(match["base"])
    if not spec.heta_family:
        raise ValueError(f"{name!r}: only HETA-family methods take @beta=…")
    beta = float(match["beta"])
    if not 0.0 <= beta <= 1.0 or math.isnan(beta):
        raise ValueError(f"{name!r}: beta must lie in [0, 1]")
    return spec, spec.with_beta(beta).default_config


def is_heta_family(name: str) -> bool:
    """Whether ``name`` (a registry name or variant) is HETA or one of its ablations."""
    return resolve_method(name)[0].heta_family


def beta_sweep(betas: tuple[float, ...] = (0.0, 0.2, 0.5, 0.8, 1.0)) -> list[str]:
    """Method names of the paper's β/γ sweep (β + γ = 1); β = 0.5 is plain ``heta``.

    Examples:
        >>> beta_sweep()
        ['heta@beta=0.0', 'heta@beta=0.2', 'heta', 'heta@beta=0.8', 'heta@beta=1.0']
    """
    return ["heta" if b == 0.5 else f"heta@beta={b}" for b in betas]
