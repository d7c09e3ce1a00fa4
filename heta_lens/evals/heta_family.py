"""HETA and its ablations from one set of components: what the eval runner runs.

The six ablations and ``heta_literal`` differ only in how gate M, curvature S and information
I are combined, and (``uniform_gate``) in how the gate's flow is read. Computing S and I once
per (prompt, target) and recombining gives exactly the numbers each method would give alone
(tested against :func:`heta_lens.attribute`), at the cost of one HETA run instead of seven.
"""

from collections.abc import Mapping
from dataclasses import astuple, dataclass, replace

from torch import Tensor, nn

from heta_lens._typing import TokensLike
from heta_lens.attribute import Components, attribute, result_from_components, target_log_prob
from heta_lens.config import HetaConfig
from heta_lens.estimators import estimate_curvature
from heta_lens.gate import gate_from_capture
from heta_lens.hooks import ModelAdapter, preserved_model_state
from heta_lens.information import compute_information
from heta_lens.inputs import prepare
from heta_lens.result import HetaResult


@dataclass(frozen=True)
class _CurvatureKey:
    """The fields that change S's value (HVP batching strategy and chunking do not)."""

    n_probes: int
    seed: int
    estimator: str
    lowrank_rank: int
    lowrank_scope: str
    layer_k: int


def _curvature_key(config: HetaConfig) -> tuple[object, ...]:
    return astuple(
        _CurvatureKey(
            n_probes=config.n_probes,
            seed=config.seed,
            estimator=config.curvature_estimator,
            lowrank_rank=config.lowrank_rank,
            lowrank_scope=config.lowrank_scope,
            layer_k=config.layer_k,
        )
    )


def heta_family(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: int | None,
    configs: Mapping[str, HetaConfig],
) -> dict[str, HetaResult]:
    """One :class:`HetaResult` per named config, sharing every component they have in common.

    Attention is captured once; the gate is read once per ``gate_mode``; S once per distinct
    curvature setting (probes, seed, estimator and its rank/layer options); I once per mask
    scheme (the KL strategy changes only round-off). Windowed configs are run on their own
    through :func:`heta_lens.attribute`.

    Args:
        model: A ``HookedTransformer`` or ``TransformerBridge``.
        tokens: Token ids containing the target, or a string.
        target: Index of the explained token (default: the last).
        configs: Method name → config.

    Returns:
        Method name → result (``result.method`` is the name).

    Raises:
        ValueError/TypeError: As :func:`heta_lens.attribute`.
    """
    adapter = ModelAdapter(model)
    req = prepare(adapter, tokens, target)
    out: dict[str, HetaResult] = {}
    plain: dict[str, HetaConfig] = {}
    for name, config in configs.items():
        if config.window is not None and req.target > config.window:
            out[name] = _named(attribute(model, req.tokens, target=req.target, config=config), name)
        else:
            plain[name] = config
    if not plain:
        return out
    gates: dict[str, Tensor] = {}
    curvatures: dict[tuple[object, ...], Tensor] = {}
    informations: dict[str, Tensor] = {}
    with preserved_model_state(model):
        log_prob = target_log_prob(adapter, req)
        capture = adapter.capture_attention(req.prefix)
        for name, config in plain.items():
            if config.gate_mode not in gates:
                gates[config.gate_mode] = gate_from_capture(capture, mode=config.gate_mode)
            key = _curvature_key(config)
            if config.use_curvature and key not in curvatures:
                curvatures[key] = estimate_curvature(adapter, req, config=config)
            if config.use_information and config.mask not in informations:
                informations[config.mask] = compute_information(
                    adapter,
                    req,
                    mask=config.mask,
                    chunk_size=config.mask_chunk,
                    strategy=config.kl_strategy,
                )
            parts = Components(
                gate=gates[config.gate_mode],
                curvature=curvatures.get(key) if config.use_curvature else None,
                information=informations.get(config.mask) if config.use_information else None,
            )
            result = result_from_components(adapter, req, parts, log_prob=log_prob, config=config)
            out[name] = _named(result, name)
    return {name: out[name] for name in configs}


def _named(result: HetaResult, name: str) -> HetaResult:
    return replace(result, method=name)
