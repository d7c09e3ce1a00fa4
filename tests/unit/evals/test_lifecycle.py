"""Worker processes of `run_eval(workers=2)` end with the run: SIGTERM, kill -9, worker error."""

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from torch import nn

from heta_lens.evals.datasets import EvalInstance
from heta_lens.evals.lifecycle import SIGTERM_EXIT, sigterm_raises, terminate
from heta_lens.evals.runner import run_eval
from heta_lens.evals.settings import EvalSettings
from heta_lens.evals.store import read_rows
from heta_lens.testing import tiny_bridge

pytestmark = pytest.mark.bridge

ROOT = Path(__file__).resolve().parents[3]
SETTINGS = EvalSettings(dataset="toy", model="tiny-bridge", n_draws=2)
METHODS = ["occlusion", "attention_rollout"]


def many_instances(n: int = 400) -> list[EvalInstance]:
    """Enough work that neither worker's shard can finish within a test's patience."""
    return [
        EvalInstance(
            uid=f"toy/{k}",
            dataset="toy",
            text="",
            tokens=(1, 5 + k % 40, 7, 3, 9, 11, 4, 8),
            targets=(5, 7),
        )
        for k in range(n)
    ]


SCRIPT = """
import sys
from pathlib import Path
from heta_lens.testing import tiny_bridge
from tests.unit.evals.test_lifecycle import METHODS, SETTINGS, many_instances
from heta_lens.evals.runner import run_eval
run_eval(tiny_bridge, many_instances(), methods=METHODS, settings=SETTINGS,
         out=Path(sys.argv[1]), workers=2, progress=False)
"""


def children_of(pid: int) -> set[int]:
    """Pids whose parent is ``pid`` (Linux /proc; field 4 of /proc/<pid>/stat)."""
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended while we looked
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            out.add(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"  # a zombie has ended


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_stopping_the_parent_stops_every_worker(tmp_path, sig):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(out)], cwd=ROOT, env=env)
    files = [out / "rows-0.jsonl", out / "rows-1.jsonl"]
    started = wait_until(lambda: all(f.exists() and f.stat().st_size > 0 for f in files), 180)
    assert started, "the workers did not start writing rows"
    assert proc.poll() is None, "the run ended before it could be stopped"
    workers = children_of(proc.pid)
    assert len(workers) >= 2  # the two workers (and multiprocessing's resource tracker)
    proc.send_signal(sig)
    code = proc.wait(timeout=60)
    assert code == (SIGTERM_EXIT if sig == signal.SIGTERM else -signal.SIGKILL)
    assert wait_until(lambda: not any(alive(p) for p in workers), 30), "a worker outlived the run"
    sizes = [f.stat().st_size for f in files]
    time.sleep(1.5)
    assert [f.stat().st_size for f in files] == sizes  # nobody writes rows any more
    rows = read_rows(out)
    assert 0 < len(rows) < len(many_instances()) * 2 * (len(METHODS) + 1)


@dataclass(frozen=True)
class FirstLoad:
    """A picklable loader: the first worker to call it (it creates ``claim``) waits ``delay``
    seconds, then fails if ``fail``, else loads; every other call loads at once."""

    claim: Path
    fail: bool = False
    delay: float = 0.0

    def __call__(self) -> nn.Module:
        try:
            os.close(os.open(self.claim, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return tiny_bridge()
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("worker failed on purpose")
        return tiny_bridge()


def test_an_error_in_one_worker_stops_the_other(tmp_path):
    out = tmp_path / "run"
    before = set(multiprocessing.active_children())
    with pytest.raises(RuntimeError, match="worker failed on purpose"):
        run_eval(
            FirstLoad(tmp_path / "claim", fail=True),
            many_instances(),
            methods=METHODS,
            settings=SETTINGS,
            out=out,
            workers=2,
            progress=False,
        )
    assert set(multiprocessing.active_children()) <= before  # both workers have ended
    # The surviving worker was stopped long before finishing its 400-target shard.
    assert len(read_rows(out)) < len(many_instances()) * (len(METHODS) + 1)


def test_sigterm_raises_restores_the_previous_handler():
    def previous(*_):
        raise AssertionError("not this one")

    original = signal.signal(signal.SIGTERM, previous)
    try:
        with pytest.raises(SystemExit) as stopped, sigterm_raises():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler interrupts this
        assert stopped.value.code == SIGTERM_EXIT
        assert signal.getsignal(signal.SIGTERM) is previous
    finally:
        signal.signal(signal.SIGTERM, original)


def _sleep_forever(ready) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only SIGKILL ends this one
    ready.set()
    time.sleep(600)


def test_terminate_kills_a_process_that_ignores_sigterm():
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    process = context.Process(target=_sleep_forever, args=(ready,))
    process.start()
    assert ready.wait(120)
    terminate([process], timeout=1.0)
    assert not process.is_alive()
    assert process.exitcode == -signal.SIGKILL
