"""HETA, its six ablations and its literal reading as registry entries."""

from typing import Any

from torch import nn

from heta_lens._typing import TokensLike
from heta_lens.attribute import attribute
from heta_lens.config import ABLATIONS, HetaConfig
from heta_lens.registry import MethodSpec
from heta_lens.result import AttributionResult
from heta_lens.targets import TargetLike


def heta(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: TargetLike,
    config: Any,
    progress: bool = False,
) -> AttributionResult:
    """:func:`heta_lens.attribute` with the registry signature."""
    return attribute(model, tokens, target=target, config=config, progress=progress)


_DESCRIPTIONS = {
    "full": "HETA: gate × (β·curvature + γ·information)",
    "transition_only": "HETA ablation: the semantic gate alone",
    "hessian_only": "HETA ablation: gate × curvature",
    "kl_only": "HETA ablation: gate × information (masked KL)",
    "no_gate": "HETA ablation: β·curvature + γ·information, no gate",
    "uniform_gate": "HETA ablation: gate with uniform attention flow (value norms only)",
}

METHODS: tuple[MethodSpec, ...] = (
    *(
        MethodSpec(
            name="heta" if ablation == "full" else f"heta_{ablation}",
            fn=heta,
            default_config=HetaConfig.ablation(ablation),
            description=_DESCRIPTIONS[ablation],
        )
        for ablation in ABLATIONS
    ),
    MethodSpec(
        name="heta_literal",
        fn=heta,
        default_config=HetaConfig.literal(),
        description="HETA read literally: unnormalised S and I, attention sink kept",
    ),
)
