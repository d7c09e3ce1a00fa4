"""Work items on a Ray cluster: one actor per worker holds the model, results stream back.

``heta-lens eval --runner ray`` and ``heta-lens attribute --input … --runner ray`` hand their
items (an (instance, target) pair; a prompt record) to :func:`ray_map`. It starts
``workers`` Ray actors, each declaring ``cpus`` CPUs (its torch threads) and one GPU when the
model runs on CUDA, so a GPU cluster packs one model per GPU. Each actor loads the model once
and computes one item per call; the driver gets each item's result back as soon as it is done
and is the only writer of the output, so the output has the same format as a local run's and
a run moves between runners (and resumes on either).

Faults: an item whose actor dies (its process, or its node, is killed) is lost and handed to
another actor; a replacement actor is started where the cluster has room. Only the driver
writes, and only whole results, so a dead worker leaves nothing half-done. Ctrl-C or SIGTERM of
the driver cancels the outstanding items and kills the actors; what was written stays valid.

Ray is an optional extra (``pip install 'heta-lens[ray]'``): nothing here imports it at
module level, and ``--runner local`` (the default) never does.
"""

import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import torch

from heta_lens.flags import flag

T = TypeVar("T")
R = TypeVar("R")

RUNNERS: tuple[str, ...] = ("local", "ray")
"""``--runner`` values: ``local`` (this machine's processes) or ``ray`` (a Ray cluster)."""

RAY_EXTRA = "--runner ray needs Ray: pip install 'heta-lens[ray]'"
"""The error raised when Ray is asked for but not installed."""

LOCAL_OBJECT_STORE = 200 * 1024**2
"""Object store of a Ray started in-process (no ``--ray-address``): results are small rows."""


def runner_flag() -> str:
    """The ``--runner`` field of a settings dataclass (:mod:`heta_lens.flags`)."""
    return flag(
        "local",
        choices=RUNNERS,
        help="local (default: this machine, no Ray) or ray (a Ray cluster, see --ray-address; "
        "needs pip install 'heta-lens[ray]')",
    )


def ray_address_flag() -> str | None:
    """The ``--ray-address`` field of a settings dataclass."""
    return flag(
        None,
        metavar="HOST:PORT",
        help="with --runner ray: the head of a running cluster (e.g. 10.0.0.1:6379, or 'auto'); "
        "default: start a one-machine Ray for this run",
    )


def ray_cpus_flag() -> int:
    """The ``--ray-cpus`` field of a settings dataclass."""
    return flag(1, help="with --runner ray: CPUs (torch threads) each Ray worker reserves")


@dataclass(frozen=True, kw_only=True)
class RayOptions:
    """Where and how :func:`ray_map` runs.

    Attributes:
        address: Head of a running cluster (``HOST:PORT`` or ``auto``); ``None`` starts a
            one-machine Ray for the run.
        workers: Actors, each with its own model.
        cpus: CPUs each actor reserves; also its torch threads.
        device: The model's device (``cpu``, ``cuda``, ``auto``): ``cuda`` reserves one GPU per
            actor, ``auto`` does when the cluster has GPUs.
        max_item_retries: Times an item is handed out again after its actor died.
        stall_timeout: Seconds to wait with items left but no actor able to start.
    """

    address: str | None = None
    workers: int = 1
    cpus: int = 1
    device: str = "cpu"
    max_item_retries: int = 3
    stall_timeout: float = 600.0

    def __post_init__(self) -> None:
        if self.workers < 1 or self.cpus < 1:
            raise ValueError(f"workers and cpus must be >= 1; got {self.workers}, {self.cpus}")
        if self.max_item_retries < 0 or self.stall_timeout <= 0:
            raise ValueError("max_item_retries must be >= 0 and stall_timeout > 0")


class RayMissingError(ImportError):
    """``--runner ray`` without Ray installed (the message names the ``ray`` extra)."""


def import_ray() -> Any:
    """The ``ray`` module.

    Raises:
        RayMissingError: Ray is not installed (an ``ImportError`` naming the ``ray`` extra).
    """
    try:
        import ray
    except ImportError as err:
        raise RayMissingError(RAY_EXTRA) from err
    return ray


@contextmanager
def ray_session(address: str | None) -> Iterator[Any]:
    """Connect to the cluster at ``address`` (or start one here) for the block.

    A Ray this process had already initialised is used as it is and left running; otherwise
    the driver disconnects (or stops the one-machine Ray it started) on exit, however the
    block ends.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    if address is None:
        ray.init(
            include_dashboard=False,
            object_store_memory=LOCAL_OBJECT_STORE,
            log_to_driver=False,
        )
    else:
        ray.init(address=address, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


class _Worker(Generic[T, R]):
    """A Ray actor's state: the model, loaded once by :meth:`ready`, and the items it runs."""

    def __init__(self, load: Callable[[], Any], threads: int) -> None:
        torch.set_num_threads(threads)  # as many threads as CPUs reserved (the local rule)
        self._load = load
        self._model: Any = None

    def ready(self) -> int:
        """Load the model; return the process id (a loader's error surfaces here)."""
        if self._model is None:
            self._model = self._load()
        return os.getpid()

    def run(self, work: Callable[[Any, T], R], item: T) -> R:
        """``work(model, item)``."""
        self.ready()
        return work(self._model, item)


def _lost_errors(ray: Any) -> tuple[type[BaseException], ...]:
    """Errors that mean the worker (or its node) died, not that the item failed."""
    exc = ray.exceptions
    return (exc.RayActorError, exc.WorkerCrashedError, exc.NodeDiedError, exc.ObjectLostError)


def _gpus(ray: Any, device: str) -> float:
    if device == "cuda":
        return 1.0
    if device == "auto":
        return 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    return 0.0


def ray_map(
    load: Callable[[], Any],
    work: Callable[[Any, T], R],
    items: Sequence[T],
    options: RayOptions,
) -> Iterator[tuple[int, R]]:
    """Yield ``(index, work(model, items[index]))`` for every item, as each finishes.

    Needs a connected Ray (:func:`ray_session`). Items go out in order, one per idle actor. An
    item whose actor dies is handed out again (up to ``options.max_item_retries`` times) and
    a replacement actor is started; every index is yielded exactly once. Closing the iterator
    (the caller's error, Ctrl-C) cancels the items in flight and kills the actors.

    Args:
        load: Returns the model; picklable (each actor calls it once).
        work: ``work(model, item)``; picklable (a module-level function or a ``partial``).
        items: Picklable work items.
        options: Workers and their resources.

    Raises:
        RuntimeError: An item's actor died more than ``max_item_retries`` times, actors kept
            dying before their first item, or no actor could start for ``stall_timeout``
            seconds while items were left.
    """
    ray = import_ray()
    lost = _lost_errors(ray)
    actor_class = ray.remote(_Worker).options(
        num_cpus=options.cpus, num_gpus=_gpus(ray, options.device), max_restarts=0
    )
    queue = deque(range(len(items)))
    tries: Counter[int] = Counter()
    early_deaths = 0
    starting: dict[Any, Any] = {}  # ready() ref -> actor
    running: dict[Any, tuple[Any, int]] = {}  # run() ref -> (actor, item index)
    idle: list[Any] = []
    actors: list[Any] = []

    def start() -> None:
        actor = actor_class.remote(load, options.cpus)
        actors.append(actor)
        starting[actor.ready.remote()] = actor

    for _ in range(min(options.workers, len(items))):
        start()
    progress_at = time.monotonic()
    try:
        while queue or running:
            while idle and queue:
                actor, index = idle.pop(), queue.popleft()
                running[actor.run.remote(work, items[index])] = (actor, index)
            if not running and time.monotonic() - progress_at > options.stall_timeout:
                raise RuntimeError(
                    f"no Ray worker could start for {options.stall_timeout:.0f} s with "
                    f"{len(queue)} items left: does the cluster have {options.cpus} free CPUs "
                    "(and a GPU for a CUDA model) per worker?"
                )
            ready, _ = ray.wait([*starting, *running], num_returns=1, timeout=1.0)
            for ref in ready:
                progress_at = time.monotonic()
                if ref in starting:
                    actor = starting.pop(ref)
                    try:
                        ray.get(ref)
                    except lost as err:
                        early_deaths += 1  # died before its first item: replace it
                        if early_deaths > options.workers * (options.max_item_retries + 1):
                            raise RuntimeError(f"Ray workers keep dying at start ({err})") from err
                        start()
                        continue
                    idle.append(actor)
                    continue
                actor, index = running.pop(ref)
                try:
                    result = ray.get(ref)
                except lost as err:
                    tries[index] += 1
                    if tries[index] > options.max_item_retries:
                        raise RuntimeError(
                            f"item {index}: its Ray worker died {tries[index]} times ({err})"
                        ) from err
                    queue.appendleft(index)
                    start()
                    continue
                idle.append(actor)
                yield index, result
    finally:
        for actor in actors:  # ends its item in flight too
            ray.kill(actor)
