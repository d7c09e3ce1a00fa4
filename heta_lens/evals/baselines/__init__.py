"""Baseline attribution methods, registered in :mod:`heta_lens.registry` next to HETA.

Gradients (saliency, input×gradient, integrated gradients), attention (rollout, last-layer
attention), perturbation (leave-one-out occlusion, KL occlusion), ReAGent and a
ContextCite-style surrogate. Every one has the registry signature and returns an
:class:`~heta_lens.result.AttributionResult`; where Captum implements the same method, the unit
tests check our numbers against Captum's.
"""

from heta_lens.evals.baselines import attention, contextcite, gradients, occlusion, reagent
from heta_lens.evals.baselines.common import BaselineEntry
from heta_lens.registry import list_methods, register_method

SIGNED: frozenset[str] = frozenset({"occlusion", "contextcite"})
"""Baselines whose scores can be negative (evals clamp negatives to 0 before normalising)."""

BASELINES: tuple[BaselineEntry, ...] = (
    *gradients.METHODS,
    *attention.METHODS,
    *occlusion.METHODS,
    *reagent.METHODS,
    *contextcite.METHODS,
)


def _register() -> None:
    present = set(list_methods())
    for entry in BASELINES:
        if entry.name not in present:
            register_method(
                entry.name,
                entry.fn,
                default_config=entry.default_config,
                description=entry.description,
                signed=entry.signed or entry.name in SIGNED,
            )


_register()

__all__ = ["BASELINES", "SIGNED", "BaselineEntry"]
