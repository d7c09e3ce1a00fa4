"""The metric values of one row, from a method's scores: every metric group of the run.

:func:`metric_values` is what both the runner (:mod:`heta_lens.evals.evaluate`, fresh scores)
and the rescoring of a stored run (:mod:`heta_lens.evals.rescore`, the scores stored in its
rows) compute per row, under the run's protocol (:mod:`heta_lens.evals.protocol`) and
concentration controls (:mod:`heta_lens.evals.metrics.controls`).
"""

import math

import torch
from torch import Tensor, nn

from heta_lens.evals.datasets import EvalInstance
from heta_lens.evals.metrics import dsa, perturbation_metrics, topk_f1
from heta_lens.evals.metrics.causal import TokenEffects, causal_scores, token_effects
from heta_lens.evals.metrics.causal_sites import metric_key
from heta_lens.evals.metrics.controls import controlled_soft_scores
from heta_lens.evals.metrics.sensitivity import token_noise
from heta_lens.evals.metrics.soft import SoftScores
from heta_lens.evals.protocol import get_protocol
from heta_lens.evals.settings import EvalSettings, row_seed
from heta_lens.result import AttributionResult


class TargetContext:
    """What every method of one target shares, computed on first use.

    :meth:`effects`: the single-token causal effects of a site (method independent, computed
    once per site; every site patches from the same corrupted embeddings, one seed per target);
    :meth:`noise`: each sensitivity draw's noise, seeded per (run, instance, target, draw) so
    every method is rerun under the same noise.
    """

    def __init__(
        self, model: nn.Module, instance: EvalInstance, target: int, settings: EvalSettings
    ):
        self.model, self.instance, self.target, self.settings = model, instance, target, settings
        self._effects: dict[str, TokenEffects] = {}

    @property
    def tokens(self) -> Tensor:
        return torch.tensor(self.instance.tokens, dtype=torch.long)

    def effects(self, site: str = "embed") -> TokenEffects:
        if site not in self._effects:
            s = self.settings
            generator = torch.Generator().manual_seed(
                row_seed(s.seed, self.instance.uid, self.target, "causal")
            )
            self._effects[site] = token_effects(
                self.model,
                self.tokens,
                target=self.target,
                corruption=s.corruption,
                noise_scale=s.noise_scale,
                n_draws=s.causal_draws,
                generator=generator,
                site=site,
            )
        return self._effects[site]

    def noise(self, draw: int) -> tuple[Tensor, Tensor]:
        """Token ids and noise of sensitivity draw ``draw`` (the same for every method)."""
        s = self.settings
        generator = torch.Generator().manual_seed(
            row_seed(s.seed, self.instance.uid, self.target, f"sensitivity/{draw}")
        )
        return token_noise(
            self.model,
            self.tokens[: self.target],
            delta=s.sensitivity_delta,
            generator=generator,
        )


def metric_values(
    context: TargetContext, result: AttributionResult
) -> tuple[dict[str, float | None], dict[str, list[float]]]:
    """Every requested metric of one result (see :mod:`heta_lens.evals.metrics`).

    Soft-NS/NC, ``hard_topk_kl`` and AOPC share one batched forward
    (:func:`~heta_lens.evals.metrics.perturbation.perturbation_metrics`), the controls'
    Soft-NS/NC a second one. Undefined values (Patch-Corr of a constant attribution) are
    stored as ``None``. The run's protocol decides what is protected and what DSA/F1
    normalise over.
    """
    model, instance, settings = context.model, context.instance, context.settings
    target, scores = result.target, result.scores
    tokens = torch.tensor(instance.tokens, dtype=torch.long)
    metrics, curves = _perturbation_values(context, result)
    metrics.update(_control_values(context, result))
    if "alignment" in settings.metrics and "support" in instance.regions:
        metrics.update(alignment_values(instance, target, scores, protocol=settings.protocol))
    if "causal" in settings.metrics:
        for site in settings.causal_sites:
            causal = causal_scores(
                model, tokens, target=target, scores=scores.detach(), effects=context.effects(site)
            )
            values = {
                "patch_corr": None if math.isnan(causal.patch_corr) else causal.patch_corr,
                "intervention_at_5": causal.intervention_at_k,
                "misattribution": causal.misattribution,
            }
            metrics.update({metric_key(k, site): v for k, v in values.items()})
    return metrics, curves


def alignment_values(
    instance: EvalInstance, target: int, scores: Tensor, *, protocol: str
) -> dict[str, float | None]:
    """``dsa``, ``dsa_coarse`` and ``f1`` of one curated row under ``protocol``.

    ``legacy``: a normalised over the whole context, F1 over every position. ``standard``:
    a normalised over the paragraph (narrative ∪ SciQ segment), F1 over positions ≥ 1.
    """
    rules = get_protocol(protocol)
    support = _region_mask(instance, "support", target)
    narrative = _region_mask(instance, "narrative", target)
    sciq = _region_mask(instance, "sciq", target)
    over = None if rules.dsa_over == "context" else narrative | sciq
    return {
        "dsa": dsa(scores, support=support, narrative=narrative, over=over),
        "dsa_coarse": dsa(scores, support=sciq, narrative=narrative, over=over),
        "f1": topk_f1(scores, support=support, protected=rules.protected),
    }


def _perturbation_values(
    context: TargetContext, result: AttributionResult
) -> tuple[dict[str, float | None], dict[str, list[float]]]:
    """Soft-NS/NC, ``hard_topk_kl`` and AOPC entries of a row, from one shared forward, each
    with its target-side ``*_logp`` sibling (:mod:`heta_lens.evals.metrics.target`)."""
    instance, settings = context.instance, context.settings
    target = result.target
    metrics: dict[str, float | None] = {}
    curves: dict[str, list[float]] = {}
    groups = [g for g in ("soft", "hard", "aopc") if g in settings.metrics]
    if not groups:
        return metrics, curves
    generator = torch.Generator().manual_seed(
        row_seed(settings.seed, instance.uid, target, result.method)
    )
    shared = perturbation_metrics(
        context.model,
        context.tokens,
        target=target,
        scores=result.scores,
        n_draws=settings.n_draws if "soft" in groups else None,
        generator=generator,
        hard_fractions=settings.hard_fractions if "hard" in groups else None,
        aopc_fractions=settings.aopc_fractions if "aopc" in groups else None,
        mask=settings.mask,
        protected=get_protocol(settings.protocol).protected,
    )
    if shared.soft is not None:
        soft = shared.soft
        metrics.update(
            soft_ns=soft.soft_ns,
            soft_nc=soft.soft_nc,
            soft_s=soft.soft_s,
            soft_c=soft.soft_c,
            s0=soft.s0,
        )
        metrics.update(_soft_logp_values(soft))
    if shared.hard is not None:
        hard = shared.hard
        metrics.update(hard_nc=hard.nc, hard_ns=hard.ns)
        if hard.logp is not None:
            metrics.update(hard_nc_logp=hard.logp.nc, hard_ns_logp=hard.logp.ns)
    if shared.aopc is not None:
        aopc = shared.aopc
        metrics.update(aopc_deletion=aopc.deletion_aopc, aopc_insertion=aopc.insertion_aopc)
        if aopc.logp is not None:
            metrics.update(
                aopc_deletion_logp=aopc.logp.deletion_aopc,
                aopc_insertion_logp=aopc.logp.insertion_aopc,
            )
        curves.update(
            deletion=[float(x) for x in aopc.p_deletion],
            insertion=[float(x) for x in aopc.p_insertion],
        )
    return metrics, curves


def _control_values(context: TargetContext, result: AttributionResult) -> dict[str, float | None]:
    """``soft_ns@<c>`` / ``soft_nc@<c>`` (and ``soft_ns_logp@<c>`` / ``soft_nc_logp@<c>``) for
    each of the run's controls c.

    The masks reuse the row's own Soft seed (common random numbers with ``soft_ns``/
    ``soft_nc``); the ``perm`` control's permutation comes from the seed of
    (run seed, uid, target, ``<method>/perm``).
    """
    instance, settings = context.instance, context.settings
    if not settings.controls:
        return {}
    target, method = result.target, result.method
    controlled = controlled_soft_scores(
        context.model,
        context.tokens,
        target=target,
        scores=result.scores,
        controls=settings.controls,
        n_draws=settings.n_draws,
        mask_seed=row_seed(settings.seed, instance.uid, target, method),
        generator=torch.Generator().manual_seed(
            row_seed(settings.seed, instance.uid, target, method + "/perm")
        ),
        protected=get_protocol(settings.protocol).protected,
        fraction=settings.matched_fraction,
    )
    out: dict[str, float | None] = {}
    for name, soft in controlled.items():
        out[f"soft_ns@{name}"] = soft.soft_ns
        out[f"soft_nc@{name}"] = soft.soft_nc
        out.update({f"{k}@{name}": v for k, v in _soft_logp_values(soft).items()})
    return out


def _soft_logp_values(soft: SoftScores) -> dict[str, float | None]:
    """``soft_ns_logp`` / ``soft_nc_logp`` (:mod:`heta_lens.evals.metrics.target`)."""
    if soft.logp is None:
        return {}
    return {"soft_ns_logp": soft.logp.soft_ns, "soft_nc_logp": soft.logp.soft_nc}


def _region_mask(instance: EvalInstance, name: str, ctx: int) -> Tensor:
    mask = torch.zeros(ctx, dtype=torch.bool)
    positions = [p for p in instance.regions.get(name, ()) if p < ctx]
    mask[positions] = True
    return mask
