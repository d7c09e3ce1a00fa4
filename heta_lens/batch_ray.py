"""Many-prompt attribution on a Ray cluster: :func:`attribute_many`'s file, computed elsewhere.

:func:`attribute_many_ray` checks its arguments like :func:`heta_lens.attribute_many`
(:func:`~heta_lens.batch.plan_many`), hands the records that ``out`` does not hold yet to Ray
actors that each load the model once (:func:`heta_lens.cluster.ray_map`), and appends each
record's line (:func:`~heta_lens.batch.record_line`, the local runner's function) to ``out`` as
it comes back. Only this process writes, so ``out`` has the local runner's format and a run
resumes on either runner. Lines go to ``out`` in completion order (readers key them by record);
the results are yielded in input order.
"""

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from torch import nn
from tqdm.auto import tqdm

from heta_lens.batch import Plan, plan_many, record_line
from heta_lens.cluster import RayOptions, ray_map, ray_session
from heta_lens.evals.lifecycle import sigterm_raises
from heta_lens.jsonl import RowWriter
from heta_lens.records import Record
from heta_lens.registry import MethodSpec
from heta_lens.result import AttributionResult, from_dict


def attribute_many_ray(
    load_model: Callable[[], nn.Module],
    records: Iterable[Record | Mapping[str, Any]],
    *,
    options: RayOptions,
    method: str | MethodSpec = "heta",
    config: Any = None,
    out: str | Path | None = None,
    aggregate: str | None = None,
    progress: bool = True,
) -> Iterator[AttributionResult]:
    """:func:`heta_lens.attribute_many` with the attributions computed by Ray workers.

    Arguments are checked now; the cluster is used as the returned iterator is consumed.

    Args:
        load_model: Picklable zero-argument loader of the model (each actor calls it once).
        records: As :func:`heta_lens.attribute_many`.
        options: Cluster address, workers and their resources.
        method: As :func:`heta_lens.attribute_many`.
        config: As :func:`heta_lens.attribute_many`.
        out: As :func:`heta_lens.attribute_many` (lines appended in completion order).
        aggregate: As :func:`heta_lens.attribute_many`.
        progress: A tqdm bar over records.

    Returns:
        An iterator of one result per record, in input order.

    Raises:
        ValueError: As :func:`heta_lens.attribute_many`.
        RayMissingError: Ray is not installed (when the iterator starts).
    """
    plan, path, done = plan_many(
        records, method=method, config=config, out=out, aggregate=aggregate
    )
    return _run(load_model, plan, path, done, options, aggregate, progress)


def _line(model: nn.Module, item: Any, *, aggregate: str | None) -> dict[str, Any]:
    """One record's output line, computed in a Ray actor."""
    return record_line(model, item, aggregate=aggregate)[1]


def _run(
    load_model: Callable[[], nn.Module],
    plan: Plan,
    path: Path | None,
    done: dict[str, dict[str, Any]],
    options: RayOptions,
    aggregate: str | None,
    progress: bool,
) -> Iterator[AttributionResult]:
    lines: dict[int, dict[str, Any]] = {
        i: done[item[0].key] for i, item in enumerate(plan) if item[0].key in done
    }
    todo = [i for i in range(len(plan)) if i not in lines]
    bar = tqdm(
        total=len(plan), initial=len(lines), desc="records", unit="record", disable=not progress
    )
    writer = None if path is None else RowWriter(path)
    work = functools.partial(_line, aggregate=aggregate)
    following = 0
    try:
        with ray_session(options.address) if todo else nullcontext(), sigterm_raises():
            # (sigterm_raises after ray.init, which installs its own SIGTERM handler)
            for k, line in ray_map(load_model, work, [plan[i] for i in todo], options):
                if writer is not None:
                    writer.write(line)
                bar.update(1)
                lines[todo[k]] = line
                while following in lines:  # yield what is ready, in input order
                    yield from_dict(lines.pop(following)["result"])
                    following += 1
        while following in lines:  # records of `out` after the last one computed
            yield from_dict(lines.pop(following)["result"])
            following += 1
    finally:
        bar.close()
        if writer is not None:
            writer.close()
