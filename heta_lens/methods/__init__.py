"""Every built-in attribution method, registered here and nowhere else.

HETA and its ablations (:mod:`~heta_lens.methods.heta`), then the baselines: gradients
(saliency, input×gradient, integrated gradients), attention (rollout, last-layer attention),
perturbation (leave-one-out occlusion, KL occlusion), ReAGent, a ContextCite-style
surrogate and AttnLRP (lxt's rules; Llama bridges only). Every one has the registry signature
and returns an :class:`~heta_lens.result.AttributionResult`. Where Captum implements the
method (saliency, input×gradient, integrated gradients, occlusion as ``FeatureAblation``),
Captum computes it on our input-embedding forward. None of this imports :mod:`heta_lens.evals`.
"""

from heta_lens.methods import (
    attention,
    attnlrp,
    contextcite,
    gradients,
    heta,
    occlusion,
    reagent,
)
from heta_lens.registry import MethodSpec, list_methods, register

BUILTIN: tuple[MethodSpec, ...] = (
    *heta.METHODS,
    *gradients.METHODS,
    *attention.METHODS,
    *occlusion.METHODS,
    *reagent.METHODS,
    *contextcite.METHODS,
    *attnlrp.METHODS,
)
"""The built-in methods, in registry order (HETA first)."""

BASELINES: tuple[MethodSpec, ...] = BUILTIN[len(heta.METHODS) :]
"""The built-in methods other than the HETA family."""


def _register() -> None:
    present = set(list_methods())
    for spec in BUILTIN:
        if spec.name not in present:
            register(spec)


_register()

__all__ = ["BASELINES", "BUILTIN"]
