"""HETA and its ablations from one set of components: one orchestration for many configs.

The six ablations, ``heta_literal`` and ``@beta=`` variants differ only in how gate M,
curvature S and information I are combined, and (``uniform_gate``) in how the gate's flow is
read. :func:`heta_family` asks one :class:`~heta_lens.components.ComponentCache` for every
config's components, so each distinct component is computed once, and combines them exactly as
:func:`heta_lens.attribute` does (same function), giving the numbers each method gives alone.
The eval runner calls it for every HETA-family method of a target.
"""

from collections.abc import Mapping
from dataclasses import replace

from torch import nn

from heta_lens._typing import TokensLike
from heta_lens.attribute import attribute, result_from_components
from heta_lens.components import ComponentCache, target_scalars
from heta_lens.config import HetaConfig
from heta_lens.hooks import ModelAdapter, preserved_model_state
from heta_lens.methods.occlusion import KL_OCCLUSION_KINDS
from heta_lens.result import AttributionResult, HetaResult
from heta_lens.targets import TargetLike, prepare_target


def heta_family(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: TargetLike,
    configs: Mapping[str, HetaConfig],
) -> dict[str, HetaResult]:
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
        Method name → result (``result.method`` is the name), in the order of ``configs``.

    Raises:
        ValueError/TypeError: As :func:`heta_lens.attribute`.
    """
    adapter = ModelAdapter(model)
    req = prepare_target(adapter, tokens, target)
    out: dict[str, HetaResult] = {}
    plain: dict[str, HetaConfig] = {}
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
    return {name: out[name] for name in configs}


def kl_occlusion_from(result: HetaResult) -> AttributionResult:
    """:func:`heta_lens.methods.occlusion.kl_occlusion`'s result read off a HETA run.

    KL-occlusion is HETA's raw information term I without the gate: the same function
    (:func:`heta_lens.information.compute_information`) on the same target, so a HETA run whose
    ``config.information.mask`` is KL-occlusion's mask has already computed it (the KL
    strategy and chunking change only round-off, as for the family's shared I). The eval runner
    reads it here instead of rerunning the ctx masked copies.

    Raises:
        ValueError: ``result`` has no information term, or its target kind is one KL-occlusion
            does not take (a metric).
    """
    if result.information is None:
        raise ValueError(f"{result.method}: no information term to read KL-occlusion from")
    if result.target_kind not in KL_OCCLUSION_KINDS:
        raise ValueError(f"kl_occlusion does not support {result.target_kind} targets")
    return AttributionResult(
        tokens=result.tokens,
        target=result.target,
        scores=result.information.detach(),
        method="kl_occlusion",
        token_strings=result.token_strings,
        target_log_prob=result.target_log_prob,
        target_kind=result.target_kind,
        target_description=result.target_description,
        target_value=result.target_value,
    )
