"""Rescore a stored run under another protocol, with concentration controls, with the
target-side metrics it predates, or on the ``top1`` subset of its curated instances.

The rows of a run store each method's scores, so every metric that needs only the scores and
model forwards (Soft-NS/NC and its controls, ``hard_topk_kl``, AOPC, their target-side
``*_logp`` versions, DSA, F1) can be recomputed without rerunning any attribution method.
:func:`rescore_run` reads a run directory, recomputes those groups for every stored row under
new settings (:func:`heta_lens.evals.row_metrics.metric_values`, the runner's own function)
and appends the rows to a new directory, which is an ordinary run directory: its
``run.json`` holds the new settings, :func:`~heta_lens.evals.stored.read_run` summarises it,
and a second call resumes (rows already there are skipped; a row cut by ``kill -9`` is
recomputed).

Kept from the stored row, not recomputed: the scores, timings and diagnostics, and the
``causal`` and ``sensitivity`` metrics (independent of the protocol and the controls; the
sensitivity metric would need the methods rerun). Causal metrics at a site the stored run did
not compute (``causal_sites=("embed", "edges")`` on a run of the ``embed`` site) are computed
from the stored scores, from the same corrupted runs (same seeds) as a fresh run's. The rows
are the ones :func:`~heta_lens.evals.evaluate.evaluate_target` writes under the new settings
for the same scores (same seeds), up to the round-off of scores read back from JSON.
"""

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from heta_lens.evals.datasets import EvalInstance, filter_top_k
from heta_lens.evals.row_metrics import TargetContext, metric_values
from heta_lens.evals.runner import check_run_file
from heta_lens.evals.settings import EvalSettings
from heta_lens.evals.store import RowWriter, done_keys, read_rows
from heta_lens.evals.stored import read_settings
from heta_lens.result import AttributionResult

RESCORED_GROUPS: tuple[str, ...] = ("soft", "hard", "aopc", "alignment")
"""Metric groups a rescoring recomputes from the stored scores."""

KEPT_METRICS: tuple[str, ...] = ("patch_corr", "intervention_at_5", "misattribution", "sensitivity")
"""Row metrics copied from the stored row (their groups are not rescored), at every causal
site (``patch_corr@edges``, ...)."""


@dataclass(frozen=True, kw_only=True)
class Rescored:
    """What :func:`rescore_run` did.

    Attributes:
        settings: The new settings (recorded in ``out/run.json``).
        rows: Every row in ``out`` afterwards.
        n_written: Rows computed by this call.
        missing_uids: Stored uids that ``instances`` does not hold (their rows are skipped:
            e.g. a decoding run's sampled continuations).
    """

    settings: EvalSettings
    rows: tuple[dict[str, Any], ...]
    n_written: int
    missing_uids: tuple[str, ...]


def rescored_settings(stored: EvalSettings, **changes: Any) -> EvalSettings:
    """``stored`` with ``changes`` (``protocol``, ``controls``, ``curated_filter``, ...).

    ``curated_filter`` may only narrow (``top10`` → ``top1``): the instances a narrower filter
    keeps are a subset of the stored run's, whose rows the rescoring reads; a wider filter
    would need rows the run does not have.

    Raises:
        ValueError: A change to a field that fixes the stored scores (``dataset``, ``model``,
            ``dtype``, ``seed``, ``heta_preset``, ``heta_overrides``), a wider curated
            filter, or the kept causal values (``corruption``, ``noise_scale``,
            ``causal_draws``), or an invalid value.
    """
    fixed = {"dataset", "model", "dtype", "seed", "heta_preset", "heta_overrides"}
    if "causal" in stored.metrics:  # the kept causal values were computed under these
        fixed |= {"corruption", "noise_scale", "causal_draws"}
    bad = sorted(k for k in changes if k in fixed and changes[k] != getattr(stored, k))
    if bad:
        raise ValueError(f"rescoring cannot change what fixed the stored scores: {bad}")
    new = dataclasses.replace(stored, **changes)
    if filter_top_k(new.curated_filter) > filter_top_k(stored.curated_filter):
        raise ValueError(
            f"rescoring can only narrow the curated filter: the run kept {stored.curated_filter}"
            f" instances, {new.curated_filter} would need rows it does not hold"
        )
    return new


def rescore_run(
    source: str | Path,
    out: str | Path,
    *,
    model: nn.Module,
    instances: Sequence[EvalInstance],
    methods: Sequence[str] | None = None,
    progress: bool = False,
    **changes: Any,
) -> Rescored:
    """Recompute the score-only metric groups of the run in ``source`` into ``out``.

    Args:
        source: A run directory (``run.json`` and ``rows*.jsonl``).
        out: The new run directory (created; resumed when it holds the same settings).
        model: The run's model (``read_settings(source).model``, loaded by the caller).
        instances: The run's dataset instances (tokens and regions of each uid), loaded
            under the new settings' ``curated_filter``: stored rows of other uids are skipped,
            which is how a ``top10`` run is rescored into its ``top1`` subset.
        methods: Rescore only the rows of these methods (default: every stored method).
        progress: Show a tqdm bar over the stored rows.
        **changes: New :class:`~heta_lens.evals.settings.EvalSettings` values, e.g.
            ``protocol="standard"``, ``controls=("rank", "matched", "perm")``.

    Returns:
        :class:`Rescored`.

    Raises:
        ValueError: ``out`` is ``source``, holds other settings, ``changes`` touch what
            fixed the scores, or a name in ``methods`` has no stored rows.
    """
    source, out = Path(source), Path(out)
    if out.resolve() == source.resolve():
        raise ValueError("rescore into a new directory: out is the source run")
    stored_settings = read_settings(source)
    rows = read_rows(source)
    if methods is not None:
        have = {r["method"] for r in rows}
        unknown = [m for m in methods if m not in have]
        if unknown:
            raise ValueError(
                f"no stored rows for {', '.join(map(repr, unknown))}; stored: {sorted(have)}"
            )
        rows = [r for r in rows if r["method"] in methods]
    return rescore_rows(
        rows,
        out,
        model=model,
        instances=instances,
        settings=rescored_settings(stored_settings, **changes),
        stored_settings=stored_settings,
        progress=progress,
    )


def rescore_rows(
    stored: Sequence[dict[str, Any]],
    out: str | Path,
    *,
    model: nn.Module,
    instances: Sequence[EvalInstance],
    settings: EvalSettings,
    stored_settings: EvalSettings | None = None,
    progress: bool = False,
) -> Rescored:
    """:func:`rescore_run` on given rows (e.g. a subset of a run's methods, or rows of derived
    variants, :mod:`heta_lens.evals.derived`) under ``settings`` (from
    :func:`rescored_settings`), into the run directory ``out`` (resumed when it holds the same
    settings). ``stored_settings``: the settings the rows were stored under (default
    ``settings``); causal sites they lack are computed, the others kept.

    Raises:
        ValueError: ``out`` holds other settings.
    """
    out = Path(out)
    stored_settings = settings if stored_settings is None else stored_settings
    check_run_file(out, settings)
    compute = _computed(stored_settings, settings)
    done = done_keys(out)
    by_uid = {instance.uid: instance for instance in instances}
    missing = tuple(dict.fromkeys(r["uid"] for r in stored if r["uid"] not in by_uid))
    todo = [r for r in stored if r["uid"] in by_uid and r["key"] not in done]
    with RowWriter(out / "rows.jsonl") as writer:
        for row in tqdm(todo, desc="rescore", unit="row", disable=not progress):
            writer.write(rescore_row(row, by_uid[row["uid"]], model=model, settings=compute))
    return Rescored(
        settings=settings, rows=tuple(read_rows(out)), n_written=len(todo), missing_uids=missing
    )


def _computed(stored: EvalSettings, settings: EvalSettings) -> EvalSettings:
    """What a rescoring computes: the rescored groups, and the causal metrics at the sites
    the stored run lacks."""
    had = stored.causal_sites if "causal" in stored.metrics else ()
    new_sites = tuple(s for s in settings.causal_sites if s not in had)
    groups = tuple(g for g in settings.metrics if g in RESCORED_GROUPS)
    if "causal" in settings.metrics and new_sites:
        return dataclasses.replace(settings, metrics=(*groups, "causal"), causal_sites=new_sites)
    return dataclasses.replace(settings, metrics=groups)


def rescore_row(
    row: dict[str, Any], instance: EvalInstance, *, model: nn.Module, settings: EvalSettings
) -> dict[str, Any]:
    """``row`` with its ``settings.metrics`` groups recomputed from its stored scores."""
    result = AttributionResult(
        tokens=torch.tensor(instance.tokens, dtype=torch.long),
        target=row["target"],
        scores=torch.tensor(row["scores"], dtype=torch.float64),
        method=row["method"],
        signed=True,  # the stored scores as they are (metrics clamp or rank them themselves)
    )
    context = TargetContext(model, instance, row["target"], settings)
    metrics, curves = metric_values(context, result)
    kept = {k: v for k, v in row["metrics"].items() if k.partition("@")[0] in KEPT_METRICS}
    return {**row, "metrics": {**metrics, **kept}, "curves": curves}
