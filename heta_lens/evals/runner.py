"""The resumable eval runner: instances × targets × methods → JSONL rows, then a summary.

Rows are appended as they are computed (:mod:`heta_lens.evals.store`); a rerun with the same
``--out`` skips every row already there, so a killed run (even ``kill -9``) resumes and ends
with the same table. ``run.json`` records the settings; resuming under different settings is
refused (the numbers would mix); the runner is not part of the settings, so a run moves
between the local runner and Ray (:mod:`heta_lens.evals.ray_runner`). ``workers > 1`` hands
the (instance, target) items, in dataset order, one at a time to spawned processes that each
load the model once, write their own ``rows-<k>.jsonl`` and share the machine's threads (no
static shards: no core idles while items remain, and a partial run covers a prefix of the
dataset). Stopping the parent (Ctrl-C, ``kill``, ``kill -9``) or an error in one worker
stops every worker (:mod:`heta_lens.evals.lifecycle`).
"""

import atexit
import json
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from heta_lens.cluster import RayOptions
from heta_lens.evals.datasets import EvalInstance
from heta_lens.evals.evaluate import RANDOM, evaluate_target
from heta_lens.evals.lifecycle import exit_with_parent, sigterm_raises, terminate
from heta_lens.evals.methods import resolve_method
from heta_lens.evals.settings import EvalSettings, stored_defaults
from heta_lens.evals.store import RowWriter, done_keys, read_rows, row_key

ModelLoader = Callable[[], nn.Module]
"""A picklable zero-argument callable returning the model (each worker calls it once)."""

WorkItem = tuple[EvalInstance, int]


def check_methods(methods: Sequence[str]) -> list[str]:
    """Validate method names against the registry (before anything is written).

    Raises:
        ValueError: No method, a duplicate, the reserved name ``random``, or an unknown name
            (the message lists the registered ones).
    """
    if not methods:
        raise ValueError("no method given: pass --methods a,b,c (see `heta-lens eval --help`)")
    if len(set(methods)) != len(methods):
        raise ValueError(f"duplicate method in {list(methods)}")
    if RANDOM in methods:
        raise ValueError("'random' is always evaluated as the baseline; do not list it")
    for name in methods:
        resolve_method(name)
    return list(methods)


def check_run_file(out: Path, settings: EvalSettings) -> None:
    path = out / "run.json"
    wanted = json.loads(json.dumps(settings.to_dict()))  # tuples compare as stored lists
    if path.exists():
        stored = json.loads(path.read_text())
        # A setting added after the run was stored counts as its default (protocol: legacy).
        stored_settings = {**stored_defaults(), **stored.get("settings", {})}
        diff = sorted(
            k for k in set(wanted) | set(stored_settings) if wanted.get(k) != stored_settings.get(k)
        )
        if diff:
            hint = (
                f" (it was computed under --protocol {stored_settings['protocol']})"
                if "protocol" in diff
                else ""
            )
            raise ValueError(
                f"{out} holds a run with different settings ({', '.join(diff)}){hint}; "
                "resume with the same options or choose another --out"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"settings": wanted}, indent=2))
    tmp.replace(path)


def pending_items(
    instances: Sequence[EvalInstance], methods: Sequence[str], done: set[str]
) -> list[WorkItem]:
    """(instance, target) pairs with at least one row (method or random) still missing."""
    names = [*methods, RANDOM]
    return [
        (instance, target)
        for instance in instances
        for target in instance.targets
        if any(row_key(instance.uid, target, m) not in done for m in names)
    ]


def run_eval(
    load_model: ModelLoader,
    instances: Sequence[EvalInstance],
    *,
    methods: Sequence[str],
    settings: EvalSettings,
    out: Path,
    workers: int = 1,
    model: nn.Module | None = None,
    progress: bool = True,
    ray: RayOptions | None = None,
) -> list[dict[str, Any]]:
    """Evaluate ``methods`` on every target of ``instances``, resuming from ``out``.

    Args:
        load_model: Returns the model (called once per worker; not called when ``model`` is
            given and ``workers == 1``).
        instances: Dataset instances (from :mod:`heta_lens.evals.datasets`).
        methods: Registered method names; the random baseline is added.
        settings: Settings of the run, stored in ``out/run.json``.
        out: Output directory (created).
        workers: Processes (each loads its own model copy).
        model: An already-loaded model to use in-process.
        progress: Show a tqdm bar (with ETA) over (instance, target) pairs.
        ray: Run the items on a Ray cluster instead (:mod:`heta_lens.evals.ray_runner`;
            ``workers`` and ``model`` are then unused: the actors load their own models).

    Returns:
        Every row in ``out`` (including rows of earlier runs).

    Raises:
        ValueError: Bad methods, ``workers < 1``, or ``out`` holds a run with other settings.
        ImportError: ``ray`` given but Ray is not installed.
    """
    methods = check_methods(methods)
    if workers < 1:
        raise ValueError(f"workers must be >= 1; got {workers}")
    check_run_file(out, settings)
    todo = pending_items(instances, methods, done_keys(out))
    total = sum(len(i.targets) for i in instances)
    bar = tqdm(
        total=total,
        initial=total - len(todo),
        desc=f"eval {settings.dataset}",
        unit="target",
        disable=not progress,
    )
    try:
        if ray is not None:
            from heta_lens.evals.ray_runner import run_items_ray

            run_items_ray(
                load_model, todo, methods=methods, settings=settings, out=out, options=ray, bar=bar
            )
        elif workers == 1 or len(todo) <= 1:
            _run_shard(
                model or load_model(),
                todo,
                methods,
                settings,
                out / "rows.jsonl",
                on_item=lambda: bar.update(1),
            )
        else:
            _run_parallel(load_model, todo, methods, settings, out, workers, bar)
    finally:
        bar.close()
    return read_rows(out)


def _run_shard(
    model: nn.Module,
    items: Sequence[WorkItem],
    methods: Sequence[str],
    settings: EvalSettings,
    path: Path,
    on_item: Callable[[], object] = lambda: None,
) -> None:
    done = done_keys(path.parent)
    with RowWriter(path) as writer:
        for instance, target in items:
            for row in evaluate_target(
                model, instance, target, methods=methods, settings=settings, skip=done
            ):
                writer.write(row)
            on_item()


@dataclass
class _WorkerState:
    """What one worker process keeps between work items (its model, row file, skip set)."""

    slot: int
    model: nn.Module | None = None
    writer: RowWriter | None = None
    done: set[str] = field(default_factory=set)


_STATE: list[_WorkerState] = []
"""This process's state when it is a worker (set by :func:`_init_worker`); empty otherwise."""


def _init_worker(slots: Any, threads: int) -> None:
    exit_with_parent()  # a parent killed with -9 cannot stop us: we stop ourselves
    torch.set_num_threads(threads)  # a worker process of our own: its thread pool is ours
    _STATE.append(_WorkerState(slot=slots.get()))


def _run_item(
    load_model: ModelLoader,
    item: WorkItem,
    methods: Sequence[str],
    settings: EvalSettings,
    out: Path,
) -> None:
    """One (instance, target) in a worker; the first call loads the model (errors surface)."""
    state = _STATE[0]
    if state.model is None or state.writer is None:
        state.done = done_keys(out)
        state.model = load_model()
        state.writer = RowWriter(out / f"rows-{state.slot}.jsonl")
        atexit.register(state.writer.close)
    instance, target = item
    for row in evaluate_target(
        state.model, instance, target, methods=methods, settings=settings, skip=state.done
    ):
        state.writer.write(row)


def _run_parallel(
    load_model: ModelLoader,
    todo: Sequence[WorkItem],
    methods: Sequence[str],
    settings: EvalSettings,
    out: Path,
    workers: int,
    bar: Any,
) -> None:
    """Run ``todo`` on ``workers`` processes that take items from one shared queue in order.

    Each worker loads the model on its first item and appends to ``rows-<slot>.jsonl``
    (slots ``0..workers-1``). Items are handed out one at a time in ``todo`` order, so no
    worker idles while another still has a backlog, and a stopped run has finished an
    (almost) gapless prefix of the dataset.
    """
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    slots = context.Queue()
    for slot in range(workers):
        slots.put(slot)
    before = set(multiprocessing.active_children())
    with (
        sigterm_raises(),
        ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(slots, threads),
        ) as pool,
    ):
        futures = [
            pool.submit(_run_item, load_model, item, methods, settings, out) for item in todo
        ]
        ours = [p for p in multiprocessing.active_children() if p not in before]
        try:
            _follow(futures, bar)
        except BaseException:
            # Ctrl-C, SIGTERM or a worker's error: stop the other workers now, not when the
            # queue is empty (the pool's exit would otherwise wait for them). Then wait for
            # the pool's manager thread: it marks the pool broken, fails the pending futures
            # and reaps the killed workers; returning before it has done so leaves them listed
            # by multiprocessing.active_children() for a moment.
            terminate(ours)
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _follow(futures: Sequence[Future[None]], bar: Any) -> None:
    """Advance ``bar`` as items finish until all are done; re-raise the first error at once."""
    pending = set(futures)
    while pending:
        finished, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
        for future in finished:
            future.result()  # a worker's error surfaces here, at once
        bar.update(len(finished))
