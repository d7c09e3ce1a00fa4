"""Explicit registry of attribution methods sharing one signature.

Every method is ``fn(model, tokens, *, target, config) -> AttributionResult``
(:class:`AttributionMethod`). HETA and its six ablations are registered here; baselines
register themselves the same way.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from torch import nn

from heta_lens._typing import TokensLike
from heta_lens.attribute import attribute
from heta_lens.config import ABLATIONS, HetaConfig
from heta_lens.result import AttributionResult


class AttributionMethod(Protocol):
    """The one signature every registered method has."""

    def __call__(
        self, model: nn.Module, tokens: TokensLike, *, target: int | None, config: Any
    ) -> AttributionResult: ...


@dataclass(frozen=True, kw_only=True)
class MethodSpec:
    """A registered method: its function, default config, one-line description, and whether
    its scores can be negative (``signed``; evals clamp negatives to 0 before normalising)."""

    name: str
    fn: AttributionMethod
    default_config: Any
    description: str
    signed: bool = False

    def __call__(
        self,
        model: nn.Module,
        tokens: TokensLike,
        *,
        target: int | None = None,
        config: Any = None,
    ) -> AttributionResult:
        result = self.fn(
            model, tokens, target=target, config=self.default_config if config is None else config
        )
        return result if result.method == self.name else replace(result, method=self.name)


_REGISTRY: dict[str, MethodSpec] = {}


def register_method(
    name: str,
    fn: AttributionMethod,
    *,
    default_config: Any = None,
    description: str = "",
    signed: bool = False,
) -> MethodSpec:
    """Add a method to the registry.

    Raises:
        ValueError: ``name`` is already registered.
    """
    if name in _REGISTRY:
        raise ValueError(f"method {name!r} is already registered")
    spec = MethodSpec(
        name=name, fn=fn, default_config=default_config, description=description, signed=signed
    )
    _REGISTRY[name] = spec
    return spec


def get_method(name: str) -> MethodSpec:
    """Look a method up by name.

    Raises:
        ValueError: Unknown name (the message lists the registered ones).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(list_methods())}") from None


def list_methods() -> list[str]:
    """Registered method names, in registration order."""
    return list(_REGISTRY)


def _heta(
    model: nn.Module, tokens: TokensLike, *, target: int | None, config: Any
) -> AttributionResult:
    return attribute(model, tokens, target=target, config=config)


def _register_heta() -> None:
    descriptions: dict[str, Callable[[], str]] = {
        "full": lambda: "HETA: gate × (β·curvature + γ·information)",
        "transition_only": lambda: "HETA ablation: the semantic gate alone",
        "hessian_only": lambda: "HETA ablation: gate × curvature",
        "kl_only": lambda: "HETA ablation: gate × information (masked KL)",
        "no_gate": lambda: "HETA ablation: β·curvature + γ·information, no gate",
        "uniform_gate": lambda: (
            "HETA ablation: gate with uniform attention flow (value norms only)"
        ),
    }
    for ablation in ABLATIONS:
        name = "heta" if ablation == "full" else f"heta_{ablation}"
        register_method(
            name,
            _heta,
            default_config=HetaConfig.ablation(ablation),
            description=descriptions[ablation](),
        )
    register_method(
        "heta_literal",
        _heta,
        default_config=HetaConfig.literal(),
        description="HETA read literally: unnormalised S and I, attention sink kept",
    )


_register_heta()
