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

from heta_lens.config import HetaConfig
from heta_lens.evals.datasets import EvalInstance
from heta_lens.evals.heta_family import heta_family
from heta_lens.evals.metrics import (
    aopc_curves,
    dsa,
    hard_topk_kl,
    random_attribution,
    soft_scores,
    topk_f1,
)
from heta_lens.evals.settings import EvalSettings, row_seed
from heta_lens.evals.store import row_key
from heta_lens.registry import get_method
from heta_lens.result import AttributionResult

RANDOM = "random"
"""Name of the random-attribution baseline row."""


def is_heta_family(method: str) -> bool:
    """Whether a registered method is HETA or one of its ablations (shares components)."""
    return isinstance(get_method(method).default_config, HetaConfig)


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
    todo = [m for m in (*methods, RANDOM) if row_key(instance.uid, target, m) not in skip]
    family = {
        m: settings.heta_config(get_method(m).default_config)
        for m in todo
        if m != RANDOM and is_heta_family(m)
    }
    if family:
        start = time.perf_counter()
        results = heta_family(model, tokens, target=target, configs=family)
        seconds = time.perf_counter() - start
        for result in results.values():
            yield make_row(model, instance, result, settings=settings, seconds=seconds, shared=True)
    for name in todo:
        if name in family:
            continue
        start = time.perf_counter()
        if name == RANDOM:
            result = _random_result(instance, target, settings)
        else:
            result = get_method(name)(model, tokens, target=target)
        seconds = time.perf_counter() - start
        yield make_row(model, instance, result, settings=settings, seconds=seconds, shared=False)


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
    model: nn.Module,
    instance: EvalInstance,
    result: AttributionResult,
    *,
    settings: EvalSettings,
    seconds: float,
    shared: bool,
) -> dict[str, Any]:
    """The stored row of one method's result: identity, scores, timing and metric values.

    ``shared`` marks HETA-family rows whose ``seconds`` is the time of the one shared run
    that produced every family member of this target.
    """
    metrics, curves = metric_values(model, instance, result, settings=settings)
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
    }


def metric_values(
    model: nn.Module, instance: EvalInstance, result: AttributionResult, *, settings: EvalSettings
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Every requested metric of one result (see :mod:`heta_lens.evals.metrics`)."""
    target, scores = result.target, result.scores
    tokens = torch.tensor(instance.tokens, dtype=torch.long)
    metrics: dict[str, float] = {}
    curves: dict[str, list[float]] = {}
    if "soft" in settings.metrics:
        generator = torch.Generator().manual_seed(
            row_seed(settings.seed, instance.uid, target, result.method)
        )
        soft = soft_scores(
            model,
            tokens,
            target=target,
            scores=scores,
            n_draws=settings.n_draws,
            generator=generator,
        )
        metrics.update(
            soft_ns=soft.soft_ns,
            soft_nc=soft.soft_nc,
            soft_s=soft.soft_s,
            soft_c=soft.soft_c,
            s0=soft.s0,
        )
    if "hard" in settings.metrics:
        hard = hard_topk_kl(
            model,
            tokens,
            target=target,
            scores=scores,
            fractions=settings.hard_fractions,
            mask=settings.mask,
        )
        metrics.update(hard_nc=hard.nc, hard_ns=hard.ns)
    if "aopc" in settings.metrics:
        aopc = aopc_curves(
            model,
            tokens,
            target=target,
            scores=scores,
            fractions=settings.aopc_fractions,
            mask=settings.mask,
        )
        metrics.update(aopc_deletion=aopc.deletion_aopc, aopc_insertion=aopc.insertion_aopc)
        curves.update(
            deletion=[float(x) for x in aopc.p_deletion],
            insertion=[float(x) for x in aopc.p_insertion],
        )
    if "alignment" in settings.metrics and "support" in instance.regions:
        support = _region_mask(instance, "support", target)
        narrative = _region_mask(instance, "narrative", target)
        sciq = _region_mask(instance, "sciq", target)
        metrics.update(
            dsa=dsa(scores, support=support, narrative=narrative),
            dsa_coarse=dsa(scores, support=sciq, narrative=narrative),
            f1=topk_f1(scores, support=support),
        )
    return metrics, curves


def _region_mask(instance: EvalInstance, name: str, ctx: int) -> Tensor:
    mask = torch.zeros(ctx, dtype=torch.bool)
    positions = [p for p in instance.regions.get(name, ()) if p < ctx]
    mask[positions] = True
    return mask
