"""HETA and its ablations from one set of components: one orchestration for many configs.

The six ablations, ``heta_literal`` and ``@beta=`` variants differ only in how gate M,
curvature S and information I are combined, and (``uniform_gate``) in how the gate's flow is
read. :func:`run_family` asks one :class:`~heta_lens.components.ComponentCache` for every
config's components, so each distinct component is computed once, and combines them exactly as
:func:`heta_lens.attribute` does (same function), giving the numbers each method gives alone.
The masked reruns behind I also measure the target scalar's drop, so the two occlusion
baselines can be read off the same run (:func:`baseline_from`). The eval runner calls it for
every HETA-family method of a target.
"""

from collections.abc import Mapping
from dataclasses import dataclass, replace

from torch import nn

from heta_lens._typing import TokensLike
from heta_lens.attribute import attribute, result_from_components
from heta_lens.components import ComponentCache, target_scalars
from heta_lens.config import HetaConfig
from heta_lens.hooks import ModelAdapter, preserved_model_state
from heta_lens.information import MaskedEffects
from heta_lens.methods.common import ALL_KINDS
from heta_lens.methods.occlusion import KL_OCCLUSION_KINDS
from heta_lens.objective import TargetKind
from heta_lens.result import AttributionResult, HetaResult
from heta_lens.targets import TargetLike, prepare_target

SHARED_BASELINES: dict[str, tuple[TargetKind, ...]] = {
    "kl_occlusion": KL_OCCLUSION_KINDS,
    "occlusion": ALL_KINDS,
}
"""Baselines :func:`baseline_from` reads off a family run → the target kinds each takes."""


@dataclass(frozen=True)
class FamilyRun:
    """The results of :func:`run_family` and the masked reruns they shared.

    Attributes:
        results: Method name → result, in the order of the configs.
        masked: Mask scheme → the effects of the shared masked reruns under it (only the
            configs that ran on the shared components: a windowed config's I is its own).
    """

    results: dict[str, HetaResult]
    masked: dict[str, MaskedEffects]


def heta_family(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: TargetLike,
    configs: Mapping[str, HetaConfig],
) -> dict[str, HetaResult]:
    """:func:`run_family`'s results: one :class:`HetaResult` per named config."""
    return run_family(model, tokens, target=target, configs=configs).results


def run_family(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: TargetLike,
    configs: Mapping[str, HetaConfig],
) -> FamilyRun:
    """One :class:`HetaResult` per named config, sharing every component they have in common.

    Attention is captured once; the gate is read once per ``gate_mode``; S once per distinct
    curvature setting (probes, seed, estimator and its rank/layer options); I once per mask
    scheme (the KL strategy changes only round-off). Windowed configs whose window is shorter
    than the context run on their own through :func:`heta_lens.attribute`.

    Args:
        model: A ``HookedTransformer`` or ``TransformerBridge``.
        tokens: Token ids containing the target, or a string.
        target: Index of the explained token (default: the last), or a target
            (:mod:`heta_lens.targets`).
        configs: Method name → config.

    Returns:
        Method name → result (``result.method`` is the name), in the order of ``configs``, and
        the masked reruns' effects by mask scheme.

    Raises:
        ValueError/TypeError: As :func:`heta_lens.attribute`.
    """
    adapter = ModelAdapter(model)
    req = prepare_target(adapter, tokens, target)
    out: dict[str, HetaResult] = {}
    plain: dict[str, HetaConfig] = {}
    masked: dict[str, MaskedEffects] = {}
    for name, config in configs.items():
        if config.window is not None and req.target > config.window.size:
            result = attribute(model, tokens, target=target, config=config)
            out[name] = replace(result, method=name)
        else:
            plain[name] = config
    if plain:
        with preserved_model_state(model):
            log_prob, value = target_scalars(adapter, req)
            cache = ComponentCache(adapter, req)
            for name, config in plain.items():
                parts = cache.components(config)
                result = result_from_components(
                    adapter, req, parts, log_prob=log_prob, config=config, value=value
                )
                out[name] = replace(result, method=name)
            masked = cache.computed_effects()
    return FamilyRun(results={name: out[name] for name in configs}, masked=masked)


def baseline_from(run: FamilyRun, method: str, *, mask: str) -> AttributionResult | None:
    """``kl_occlusion`` or ``occlusion`` with mask scheme ``mask``, read off a family run.

    Both are functionals of the masked reruns behind HETA's information term: KL-occlusion is
    the raw I without the gate (the same :func:`heta_lens.information.compute_information`),
    leave-one-out occlusion the target scalar's drop ``f − f_masked_i`` from the same forwards
    (:class:`heta_lens.information.MaskedEffects`). The numbers equal the baselines' own runs up
    to round-off (the KL strategy, chunking and batch composition differ; occlusion's own run
    goes through Captum's ``FeatureAblation``). The eval runner reads them here instead of
    rerunning the ctx masked copies.

    Returns:
        The baseline's result, or ``None`` where the run did not compute it: no shared masked
        reruns under ``mask`` (no member with information, another mask, only windowed
        members) or a target kind the baseline does not take (KL-occlusion of a metric).

    Raises:
        ValueError: ``method`` is not one of :data:`SHARED_BASELINES`.
    """
    if method not in SHARED_BASELINES:
        raise ValueError(
            f"{method!r} cannot be read off a HETA run; valid: {', '.join(SHARED_BASELINES)}"
        )
    effects = run.masked.get(mask)
    if effects is None or not run.results:
        return None
    template = next(iter(run.results.values()))
    if template.target_kind not in SHARED_BASELINES[method]:
        return None
    kl = method == "kl_occlusion"
    return AttributionResult(
        tokens=template.tokens,
        target=template.target,
        scores=(effects.information if kl else effects.drop).detach(),
        method=method,
        token_strings=template.token_strings,
        target_log_prob=template.target_log_prob,
        signed=not kl,
        target_kind=template.target_kind,
        target_description=template.target_description,
        target_value=template.target_value,
    )
