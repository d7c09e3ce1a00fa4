"""Explicit registry of attribution methods sharing one signature.

Every method is ``fn(model, tokens, *, target, config) -> AttributionResult``
(:class:`AttributionMethod`; a method with progress bars also takes ``progress``), described by
one :class:`MethodSpec`; every caller (CLI, demo, evals, benchmarks, tutorials) runs a method as
``get_method(name)(model, tokens, target=..., config=..., progress=...)``. The built-in methods
(HETA, its ablations and the baselines) are all registered in one place, :mod:`heta_lens.methods`;
user code adds its own with :func:`register_method`. Whether a method's scores can be negative
is a property of each result (``AttributionResult.signed``), not of the name.
"""

import inspect
from dataclasses import dataclass, replace
from typing import Any, Protocol

from torch import nn

from heta_lens._typing import TokensLike
from heta_lens.config import HetaConfig
from heta_lens.presets import with_preset
from heta_lens.result import AttributionResult
from heta_lens.targets import TargetLike


class AttributionMethod(Protocol):
    """The one signature every registered method has."""

    def __call__(
        self, model: nn.Module, tokens: TokensLike, *, target: TargetLike, config: Any
    ) -> AttributionResult: ...


@dataclass(frozen=True, kw_only=True)
class MethodSpec:
    """A method: registry name, function, default config (a frozen dataclass or ``None``,
    serialised with ``dataclasses.asdict`` by the eval runner) and a one-line description."""

    name: str
    fn: AttributionMethod
    default_config: Any
    description: str

    def __call__(
        self,
        model: nn.Module,
        tokens: TokensLike,
        *,
        target: TargetLike = None,
        config: Any = None,
        progress: bool = False,
    ) -> AttributionResult:
        """Run the method (``config=None``: its default config); ``progress`` shows tqdm bars
        where the method has long loops (it is not passed to a function without the keyword).
        The result's ``method`` is this entry's name."""
        extra = {"progress": progress} if progress and _takes_progress(self.fn) else {}
        result = self.fn(
            model,
            tokens,
            target=target,
            config=self.default_config if config is None else config,
            **extra,
        )
        return result if result.method == self.name else replace(result, method=self.name)

    @property
    def heta_family(self) -> bool:
        """Whether this is HETA or a variant of it (its default config is a :class:`HetaConfig`)."""
        return isinstance(self.default_config, HetaConfig)

    def _heta_config(self, option: str) -> HetaConfig:
        if not isinstance(self.default_config, HetaConfig):
            raise ValueError(f"{option} applies to HETA-family methods, not {self.name!r}")
        return self.default_config

    def with_preset(self, preset: str) -> "MethodSpec":
        """This method with ``preset``'s estimator settings on its default config
        (:func:`heta_lens.presets.with_preset`: the one preset-merge rule).

        Raises:
            ValueError: Unknown preset, or the method is not in the HETA family.
        """
        return replace(self, default_config=with_preset(self._heta_config("a preset"), preset))

    def with_probes(self, n_probes: int) -> "MethodSpec":
        """This method with ``n_probes`` Hutchinson probes in its curvature estimator.

        Raises:
            ValueError: The method is not in the HETA family, or ``n_probes`` < 1.
        """
        return replace(self, default_config=self._heta_config("--n-probes").with_probes(n_probes))

    def keeping(self, *, gate_by_head: bool = False, interactions: bool = False) -> "MethodSpec":
        """This method also keeping the per-head gate and/or the curvature interaction map
        (:meth:`HetaConfig.keeping`).

        Raises:
            ValueError: The method is not in the HETA family, or its estimator cannot give
                interactions, or its curvature term is off.
        """
        if not (gate_by_head or interactions):
            return self
        option = "--heads" if gate_by_head else "--interactions"
        config = self._heta_config(option).keeping(
            gate_by_head=gate_by_head, interactions=interactions
        )
        return replace(self, default_config=config)

    def with_beta(self, beta: float) -> "MethodSpec":
        """This method with weights β = ``beta``, γ = 1 − β (the evals' ``NAME@beta=B``).

        Raises:
            ValueError: The method is not in the HETA family, or β outside [0, 1].
        """
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must lie in [0, 1]; got {beta}")
        config = replace(self._heta_config("a @beta= weight"), beta=beta, gamma=1.0 - beta)
        return replace(self, default_config=config)


def _takes_progress(fn: AttributionMethod) -> bool:
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "progress" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


_REGISTRY: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    """Add a :class:`MethodSpec` to the registry.

    Raises:
        ValueError: Its name is already registered.
    """
    if spec.name in _REGISTRY:
        raise ValueError(f"method {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def register_method(
    name: str, fn: AttributionMethod, *, default_config: Any = None, description: str = ""
) -> MethodSpec:
    """Add a method to the registry (:func:`register` of a new :class:`MethodSpec`).

    Raises:
        ValueError: ``name`` is already registered.
    """
    spec = MethodSpec(name=name, fn=fn, default_config=default_config, description=description)
    return register(spec)


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
