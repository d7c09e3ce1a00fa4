"""HETA, its six ablations, its literal reading and three mixing variants as registry entries.

The variants (issue 25) change only how the normalised terms are combined; ``heta`` stays the
paper's additive, sum-normalised reading:

- ``heta_geo``: ``mix="geometric"``, G·(S'^β·I'^γ)^(1/(β+γ)).
- ``heta_rankmix``: ``mix="rank"``, G·(β·R(S') + γ·R(I')) (:func:`heta_lens.scoring.rank_term`).
- ``heta_max``: ``normalization="max"``, G·(β·S/max S + γ·I/max I).
"""

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
    MethodSpec(
        name="heta_geo",
        fn=heta,
        default_config=HetaConfig(mix="geometric"),
        description="HETA variant: gate × weighted geometric mean of curvature and information",
    ),
    MethodSpec(
        name="heta_rankmix",
        fn=heta,
        default_config=HetaConfig(mix="rank"),
        description="HETA variant: gate × weighted sum of curvature and information ranks",
    ),
    MethodSpec(
        name="heta_max",
        fn=heta,
        default_config=HetaConfig(normalization="max"),
        description="HETA variant: curvature and information divided by their max, not sum",
    ),
)
