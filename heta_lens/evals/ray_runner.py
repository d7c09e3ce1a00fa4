"""The eval runner's Ray backend: (instance, target) items on a cluster, one writer here.

:func:`run_items_ray` is what :func:`heta_lens.evals.runner.run_eval` calls with
``runner="ray"``. The items are the local runner's; each Ray actor loads the model once
(:func:`heta_lens.cluster.ray_map`) and returns the finished rows of one item, which this
process appends to ``OUT/rows.jsonl`` (the format every runner writes and reads). The actors
need no access to ``OUT``: each item carries the keys already stored for it. Rows are computed
with the seeds of :func:`~heta_lens.evals.settings.row_seed` and as many torch threads as a
local worker of the same CPU share, so they equal the local runner's.
"""

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from heta_lens.cluster import RayOptions, ray_map, ray_session
from heta_lens.evals.datasets import EvalInstance
from heta_lens.evals.evaluate import RANDOM, evaluate_target
from heta_lens.evals.lifecycle import sigterm_raises
from heta_lens.evals.settings import EvalSettings
from heta_lens.evals.store import RowWriter, done_keys, row_key

RayItem = tuple[EvalInstance, int, frozenset[str]]
"""An (instance, target) pair and the keys of its rows that are already stored."""


def eval_item(
    model: nn.Module, item: RayItem, *, methods: tuple[str, ...], settings: EvalSettings
) -> list[dict[str, Any]]:
    """The rows of one (instance, target) that are not stored yet (run in a Ray actor)."""
    instance, target, skip = item
    rows = evaluate_target(model, instance, target, methods=methods, settings=settings, skip=skip)
    return list(rows)


def run_items_ray(
    load_model: Any,
    todo: Sequence[tuple[EvalInstance, int]],
    *,
    methods: Sequence[str],
    settings: EvalSettings,
    out: Path,
    options: RayOptions,
    bar: Any,
) -> None:
    """Evaluate ``todo`` on Ray, appending each item's rows to ``out/rows.jsonl`` as it ends.

    Args:
        load_model: Picklable zero-argument model loader (each actor calls it once).
        todo: The (instance, target) items still missing rows, in dataset order.
        methods: Method names (the random baseline is added by ``evaluate_target``).
        settings: The run's settings.
        out: The run directory (read for the stored keys; only this process writes to it).
        options: Cluster address, workers and their resources.
        bar: A tqdm bar advanced once per finished item.

    Raises:
        ImportError: Ray is not installed.
        RuntimeError: An item's worker died too often, or no worker could start.
    """
    if not todo:
        return  # nothing left: no cluster needed
    done = done_keys(out)
    names = (*methods, RANDOM)
    items: list[RayItem] = [
        (
            instance,
            target,
            frozenset(k for k in (row_key(instance.uid, target, m) for m in names) if k in done),
        )
        for instance, target in todo
    ]
    work = functools.partial(eval_item, methods=tuple(methods), settings=settings)
    with (
        ray_session(options.address),
        sigterm_raises(),  # after ray.init, which installs its own SIGTERM handler
        RowWriter(out / "rows.jsonl") as writer,
    ):
        for _, rows in ray_map(load_model, work, items, options):
            writer.write_all(rows)
            bar.update(1)
