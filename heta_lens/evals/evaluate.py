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
from heta_lens.evals.metrics import random_attribution
from heta_lens.evals.metrics.sensitivity import embedding_noise, sensitivity
from heta_lens.evals.protocol import get_protocol
from heta_lens.evals.row_metrics import TargetContext, metric_values
from heta_lens.evals.settings import EvalSettings, row_seed
from heta_lens.evals.store import row_key
from heta_lens.family import SHARED_BASELINES, baseline_from, run_family
from heta_lens.result import AttributionResult

RANDOM = "random"
"""Name of the random-attribution baseline row."""


def run_methods(
    model: nn.Module,
    tokens: Tensor,
    *,
    target: int,
    names: Sequence[str],
    settings: EvalSettings,
) -> Iterator[tuple[AttributionResult, float, bool]]:
    """(result, seconds, shared) per method name; the HETA family shares one run.

    ``kl_occlusion`` and ``occlusion`` are read off that run's masked reruns
    (:func:`heta_lens.family.baseline_from`) when a family member computed I with the
    baseline's own mask on the whole context (and the baseline takes the target's kind); their
    rows are then marked shared too. Otherwise every method runs on its own.
    """
    family = {m: settings.heta_config(resolve_method(m)[1]) for m in names if is_heta_family(m)}
    derived: dict[str, AttributionResult] = {}
    seconds = 0.0
    if family:
        start = time.perf_counter()
        run = run_family(model, tokens, target=target, configs=family)
        seconds = time.perf_counter() - start
        for result in run.results.values():
            yield result, seconds, True
        for name in SHARED_BASELINES:
            if name in names:
                mask = getattr(resolve_method(name)[1], "mask", None)
                result = None if mask is None else baseline_from(run, name, mask=mask)
                if result is not None:
                    derived[name] = result
    for name in names:
        if name in family:
            continue
        if name in derived:
            yield derived[name], seconds, True
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
        replaceable = get_protocol(context.settings.protocol).noise_replaceable
        with embedding_noise(context.model, ids, noise, replaceable=replaceable):
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

    ``shared`` marks HETA-family rows (and occlusion baselines read off their run) whose
    ``seconds`` is the time of the one shared run that produced every family member of this
    target. ``noisy``: the method's scores under
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
