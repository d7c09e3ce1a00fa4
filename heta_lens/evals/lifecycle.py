"""Lifetime of the runner's worker processes: they end when the run ends, however it ends.

``heta-lens eval --workers N`` spawns N processes. Without care, stopping the parent leaves
them running: ``kill <parent>`` (SIGTERM) ends the parent without unwinding anything, and
``kill -9`` cannot be caught at all, so the workers went on appending rows for minutes. Two
pieces close both holes:

- :func:`sigterm_raises` (parent): while the run waits on its workers, SIGTERM raises
  ``SystemExit(143)`` like Ctrl-C raises ``KeyboardInterrupt``, so the runner's cleanup
  (:func:`terminate`) runs; the previous handler is restored afterwards.
- :func:`exit_with_parent` (worker): a daemon thread ends the worker with ``os._exit`` once
  its parent is gone (the parent pid changes when the parent dies, ``kill -9`` included).

Rows are one flushed JSON line each (:mod:`heta_lens.evals.store`), so a worker stopped
mid-row loses at most that row, which the next run recomputes.
"""

import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from multiprocessing.process import BaseProcess
from types import FrameType

SIGTERM_EXIT = 128 + signal.SIGTERM
"""Exit status of a run stopped by SIGTERM (the shell convention, 143)."""


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises ``SystemExit(143)`` in the main thread.

    Outside the main thread (where Python cannot install signal handlers) the block runs
    unchanged. The handler that was installed before is put back on exit (the default
    action when it was not installed from Python, e.g. by Ray's C++ core).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
        raise SystemExit(SIGTERM_EXIT)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def terminate(processes: Iterable[BaseProcess], *, timeout: float = 10.0) -> None:
    """SIGTERM each live process, wait up to ``timeout`` s for all, then SIGKILL stragglers."""
    alive = [p for p in processes if p.is_alive()]
    for process in alive:
        process.terminate()
    deadline = time.monotonic() + timeout
    for process in alive:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in alive:
        if process.is_alive():
            process.kill()
            process.join()


def exit_with_parent(*, poll: float = 0.5) -> threading.Thread:
    """Start a daemon thread that ends this process as soon as its parent is gone.

    Args:
        poll: Seconds between checks of the parent pid.

    Returns:
        The started watcher thread.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        os._exit(SIGTERM_EXIT)

    thread = threading.Thread(target=watch, name="heta-lens-parent-watch", daemon=True)
    thread.start()
    return thread
