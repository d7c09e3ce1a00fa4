"""Score one (instance, target): run each method, then every metric on its scores.

Produces the rows the runner stores: one per method plus one for the random baseline
(``method="random"``: a = softmax(u), u ~ U(0,1)^ctx, as in ReAGent), which every Soft-NS/NC
log ratio is taken against. Each row's randomness (Soft-NS/NC mask draws, the random
attribution) comes from a generator seeded by (run seed, uid, target, method), so a row's
numbers do not depend on what ran before it: a resumed run reproduces an uninterrupted one.
"""

import math
import time
from collections.abc import Container, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from heta_lens.evals.datasets import EvalInstance
from heta_lens.evals.methods import is_heta_family, resolve_method
from heta_lens.evals.metrics import dsa, perturbation_metrics, random_attribution, topk_f1
from heta_lens.evals.metrics.causal import TokenEffects, causal_scores, token_effects
from heta_lens.evals.metrics.sensitivity import embedding_noise, sensitivity, token_noise
from heta_lens.evals.settings import EvalSettings, row_seed
from heta_lens.evals.store import row_key
from heta_lens.family import heta_family
from heta_lens.result import AttributionResult

RANDOM = "random"
"""Name of the random-attribution baseline row."""


class TargetContext:
    """What every method of one target shares, computed on first use.

    :meth:`effects`: the single-token causal effects (method independent, computed once);
    :meth:`noise`: each sensitivity draw's noise, seeded per (run, instance, target, draw) so
    every method is rerun under the same noise.
    """

    def __init__(
        self, model: nn.Module, instance: EvalInstance, target: int, settings: EvalSettings
    ):
        self.model, self.instance, self.target, self.settings = model, instance, target, settings
        self._effects: TokenEffects | None = None

    @property
    def tokens(self) -> Tensor:
        return torch.tensor(self.instance.tokens, dtype=torch.long)

    def effects(self) -> TokenEffects:
        if self._effects is None:
            s = self.settings
            generator = torch.Generator().manual_seed(
                row_seed(s.seed, self.instance.uid, self.target, "causal")
            )
            self._effects = token_effects(
                self.model,
                self.tokens,
                target=self.target,
                corruption=s.corruption,
                noise_scale=s.noise_scale,
                n_draws=s.causal_draws,
                generator=generator,
            )
        return self._effects

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


def run_methods(
    model: nn.Module,
    tokens: Tensor,
    *,
    target: int,
    names: Sequence[str],
    settings: EvalSettings,
) -> Iterator[tuple[AttributionResult, float, bool]]:
    """(result, seconds, shared) per method name; the HETA family shares one run."""
    family = {m: settings.heta_config(resolve_method(m)[1]) for m in names if is_heta_family(m)}
    if family:
        start = time.perf_counter()
        results = heta_family(model, tokens, target=target, configs=family)
        seconds = time.perf_counter() - start
        for result in results.values():
            yield result, seconds, True
    for name in names:
        if name in family:
            continue
        start = time.perf_counter()
        spec, config = resolve_method(name)
        result = spec(model, tokens, target=target, config=config)
        yield result, time.perf_counter() - start, False


def evaluate_target(
    model: nn.Module,
    instance: EvalInstance,
    target: int,
    *,
    methods: Sequence[str],
    settings: EvalSettings,
    skip: Container[str] = (),
) -> Iterator[dict[str, Any]]:
    """Yield the rows of one target, skipping keys in ``skip`` (already stored).

    Args:
        model: The evaluated model.
        instance: The dataset instance (``target`` must be one of ``instance.targets``).
        target: Position of the explained token.
        methods: Registered method names (the random baseline is always added).
        settings: The run's settings.
        skip: Row keys already done.

    Yields:
        JSON-serialisable rows (see :func:`make_row`), each as soon as it is complete.
    """
    tokens = torch.tensor(instance.tokens, dtype=torch.long)
    todo = [m for m in methods if row_key(instance.uid, target, m) not in skip]
    context = TargetContext(model, instance, target, settings)
    noisy = _noisy_results(context, todo) if "sensitivity" in settings.metrics else {}
    for result, seconds, shared in run_methods(
        model, tokens, target=target, names=todo, settings=settings
    ):
        yield make_row(
            context, result, seconds=seconds, shared=shared, noisy=noisy.get(result.method)
        )
    if row_key(instance.uid, target, RANDOM) not in skip:
        start = time.perf_counter()
        result = _random_result(instance, target, settings)
        seconds = time.perf_counter() - start
        # Random scores ignore the input: under noise they are the same draw (sensitivity 0
        # by construction), so no noisy reruns are stored for them.
        yield make_row(context, result, seconds=seconds, shared=False, noisy=None)


def _noisy_results(context: TargetContext, names: Sequence[str]) -> dict[str, list[Tensor]]:
    """Method → its scores under each sensitivity draw's embedding noise."""
    out: dict[str, list[Tensor]] = {name: [] for name in names}
    for draw in range(context.settings.sensitivity_draws):
        ids, noise = context.noise(draw)
        with embedding_noise(context.model, ids, noise):
            for result, _, _ in run_methods(
                context.model,
                context.tokens,
                target=context.target,
                names=names,
                settings=context.settings,
            ):
                out[result.method].append(result.scores.detach().cpu())
    return out


def _random_result(
    instance: EvalInstance, target: int, settings: EvalSettings
) -> AttributionResult:
    generator = torch.Generator().manual_seed(
        row_seed(settings.seed, instance.uid, target, RANDOM + "/scores")
    )
    return AttributionResult(
        tokens=torch.tensor(instance.tokens, dtype=torch.long),
        target=target,
        scores=random_attribution(target, generator=generator),
        method=RANDOM,
    )


def make_row(
    context: TargetContext,
    result: AttributionResult,
    *,
    seconds: float,
    shared: bool,
    noisy: Sequence[Tensor] | None = None,
) -> dict[str, Any]:
    """The stored row of one method's result: identity, scores, timing and metric values.

    ``shared`` marks HETA-family rows whose ``seconds`` is the time of the one shared run
    that produced every family member of this target. ``noisy``: the method's scores under
    the sensitivity draws (``sensitivity`` metric group). A result with non-empty
    ``diagnostics`` (ReAGent's steps and stopped probes) stores them under ``"diagnostics"``.
    """
    instance, settings = context.instance, context.settings
    metrics, curves = metric_values(context, result)
    if "sensitivity" in settings.metrics:
        draws = torch.stack(list(noisy)) if noisy else result.scores[None].expand(2, -1)
        metrics["sensitivity"] = sensitivity(draws)
    return {
        "key": row_key(instance.uid, result.target, result.method),
        "uid": instance.uid,
        "dataset": instance.dataset,
        "target": result.target,
        "method": result.method,
        "ctx": result.target,
        "target_token": result.target_token,
        "target_log_prob": None if math.isnan(result.target_log_prob) else result.target_log_prob,
        "seconds": seconds,
        "seconds_shared": shared,
        "scores": [float(x) for x in result.scores],
        "metrics": metrics,
        "curves": curves,
        **({"diagnostics": dict(result.diagnostics)} if result.diagnostics else {}),
    }


def metric_values(
    context: TargetContext, result: AttributionResult
) -> tuple[dict[str, float | None], dict[str, list[float]]]:
    """Every requested metric of one result (see :mod:`heta_lens.evals.metrics`).

    Soft-NS/NC, ``hard_topk_kl`` and AOPC share one batched forward
    (:func:`~heta_lens.evals.metrics.perturbation.perturbation_metrics`). Undefined values
    (Patch-Corr of a constant attribution) are stored as ``None``.
    """
    model, instance, settings = context.model, context.instance, context.settings
    target, scores = result.target, result.scores
    tokens = torch.tensor(instance.tokens, dtype=torch.long)
    metrics, curves = _perturbation_values(context, result)
    if "alignment" in settings.metrics and "support" in instance.regions:
        support = _region_mask(instance, "support", target)
        narrative = _region_mask(instance, "narrative", target)
        sciq = _region_mask(instance, "sciq", target)
        metrics.update(
            dsa=dsa(scores, support=support, narrative=narrative),
            dsa_coarse=dsa(scores, support=sciq, narrative=narrative),
            f1=topk_f1(scores, support=support),
        )
    if "causal" in settings.metrics:
        causal = causal_scores(
            model, tokens, target=target, scores=scores.detach(), effects=context.effects()
        )
        metrics.update(
            patch_corr=None if math.isnan(causal.patch_corr) else causal.patch_corr,
            intervention_at_5=causal.intervention_at_k,
            misattribution=causal.misattribution,
        )
    return metrics, curves


def _perturbation_values(
    context: TargetContext, result: AttributionResult
) -> tuple[dict[str, float | None], dict[str, list[float]]]:
    """Soft-NS/NC, ``hard_topk_kl`` and AOPC entries of a row, from one shared forward."""
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
    if shared.hard is not None:
        metrics.update(hard_nc=shared.hard.nc, hard_ns=shared.hard.ns)
    if shared.aopc is not None:
        aopc = shared.aopc
        metrics.update(aopc_deletion=aopc.deletion_aopc, aopc_insertion=aopc.insertion_aopc)
        curves.update(
            deletion=[float(x) for x in aopc.p_deletion],
            insertion=[float(x) for x in aopc.p_insertion],
        )
    return metrics, curves


def _region_mask(instance: EvalInstance, name: str, ctx: int) -> Tensor:
    mask = torch.zeros(ctx, dtype=torch.bool)
    positions = [p for p in instance.regions.get(name, ()) if p < ctx]
    mask[positions] = True
    return mask
