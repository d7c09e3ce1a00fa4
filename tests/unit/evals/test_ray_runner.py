"""The eval runner on a real two-node Ray cluster (loopback): rows equal the local runner's,
a killed worker node loses nothing, a run resumes across runners, SIGTERM stops the driver."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from heta_lens.cluster import RayOptions
from heta_lens.evals.datasets import EvalInstance
from heta_lens.evals.lifecycle import SIGTERM_EXIT
from heta_lens.evals.runner import run_eval
from heta_lens.evals.store import ROWS_GLOB, read_rows
from heta_lens.testing import tiny_bridge
from tests.unit.evals.test_lifecycle import wait_until
from tests.unit.evals.test_runner import SETTINGS, _comparable

# `cluster` (tests/conftest.py): one two-node Ray cluster for every `ray` test of the session.
pytestmark = [pytest.mark.ray, pytest.mark.bridge, pytest.mark.xdist_group("ray")]

ROOT = Path(__file__).resolve().parents[3]
METHODS = ["heta", "occlusion"]  # HETA (1 probe) and a baseline: rows with every metric


def instances(n: int = 6) -> list[EvalInstance]:
    """``n`` toy instances, two targets each (enough items that a kill lands mid-run)."""
    return [
        EvalInstance(
            uid=f"toy/{k}",
            dataset="toy",
            text="",
            tokens=(1, 5 + k, 7, 3, 9 + k, 11, 4, 8),
            targets=(5, 7),
        )
        for k in range(n)
    ]


@pytest.fixture(scope="module")
def local_rows(tmp_path_factory):
    """The rows of the local runner (in-process, one thread: OMP_NUM_THREADS=1 as in CI, and a
    Ray worker with one CPU runs one torch thread) for :func:`instances`."""
    out = tmp_path_factory.mktemp("local")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run_eval(
            tiny_bridge, instances(), methods=METHODS, settings=SETTINGS, out=out, progress=False
        )
    finally:
        torch.set_num_threads(threads)


def _line_counts(out: Path) -> Counter[str]:
    """How many lines of ``out``'s row files hold each key (a row written twice counts 2)."""
    keys: Counter[str] = Counter()
    for path in out.glob(ROWS_GLOB):
        for line in path.read_text().splitlines():
            keys[json.loads(line)["key"]] += 1
    return keys


def test_ray_rows_equal_the_local_rows(cluster, local_rows, tmp_path):
    options = RayOptions(address=cluster.address, workers=2)
    rows = run_eval(
        tiny_bridge,
        instances(),
        methods=METHODS,
        settings=SETTINGS,
        out=tmp_path,
        progress=False,
        ray=options,
    )
    assert len(local_rows) == 6 * 2 * (len(METHODS) + 1)
    assert _comparable(rows) == _comparable(local_rows)  # exact: same seeds, same threads
    assert [p.name for p in tmp_path.glob(ROWS_GLOB)] == ["rows.jsonl"]  # one writer
    assert set(_line_counts(tmp_path).values()) == {1}


def test_a_killed_worker_node_loses_nothing(cluster, local_rows, tmp_path):
    worker_node = cluster.list_all_nodes()[1]
    raylet = worker_node.all_processes["raylet"][0].process
    rows_file = tmp_path / "rows.jsonl"
    killed = threading.Event()
    rows_at_kill: list[int] = []

    def kill_after_first_rows() -> None:
        if wait_until(lambda: rows_file.exists() and rows_file.stat().st_size > 0, 120):
            # The raylet and its worker processes (the actor among them), by pid.
            for pid in [*_children(raylet.pid), raylet.pid]:
                os.kill(pid, signal.SIGKILL)
            rows_at_kill.append(rows_file.read_text().count("\n"))
            killed.set()

    killer = threading.Thread(target=kill_after_first_rows)
    killer.start()
    try:
        rows = run_eval(
            tiny_bridge,
            instances(),
            methods=METHODS,
            settings=SETTINGS,
            out=tmp_path,
            progress=False,
            ray=RayOptions(address=cluster.address, workers=2),
        )
    finally:
        killer.join()
    assert killed.is_set()
    assert rows_at_kill[0] < len(local_rows)  # killed mid-run, items still in flight or queued
    assert _comparable(rows) == _comparable(local_rows)
    assert _line_counts(tmp_path) == Counter({r["key"]: 1 for r in local_rows})


def _children(pid: int) -> list[int]:
    from tests.unit.evals.test_lifecycle import children_of

    return sorted(children_of(pid))


def test_a_run_moves_between_runners(cluster, local_rows, tmp_path):
    run_eval(
        tiny_bridge, instances(3), methods=METHODS, settings=SETTINGS, out=tmp_path, progress=False
    )  # a local run that covered the first 3 instances only
    rows = run_eval(
        tiny_bridge,
        instances(),
        methods=METHODS,
        settings=SETTINGS,
        out=tmp_path,
        progress=False,
        ray=RayOptions(address=cluster.address, workers=2),
    )
    assert _comparable(rows) == _comparable(local_rows)
    assert set(_line_counts(tmp_path).values()) == {1}  # nothing local was recomputed


SCRIPT = """
import sys
from pathlib import Path
from heta_lens.cluster import RayOptions
from heta_lens.evals.runner import run_eval
from heta_lens.testing import tiny_bridge
from tests.unit.evals.test_ray_runner import instances
from tests.unit.evals.test_ray_runner import METHODS
from tests.unit.evals.test_runner import SETTINGS
run_eval(tiny_bridge, instances(40), methods=METHODS, settings=SETTINGS, out=Path(sys.argv[1]),
         progress=False, ray=RayOptions(address=sys.argv[2], workers=2))
"""


def test_sigterm_stops_the_driver_and_the_run_resumes_locally(cluster, local_rows, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(tmp_path), cluster.address], cwd=ROOT, env=env
    )
    rows_file = tmp_path / "rows.jsonl"
    assert wait_until(lambda: rows_file.exists() and rows_file.stat().st_size > 0, 120)
    assert proc.poll() is None, "the run ended before it could be stopped"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == SIGTERM_EXIT
    size = rows_file.stat().st_size
    time.sleep(1.5)
    assert rows_file.stat().st_size == size  # nobody writes rows any more
    partial = read_rows(tmp_path)  # every line whole
    total = 40 * 2 * (len(METHODS) + 1)
    assert 0 < len(partial) < total
    assert set(_line_counts(tmp_path).values()) == {1}
    resumed = run_eval(  # the first 8 instances, locally: what Ray did is not redone
        tiny_bridge, instances(), methods=METHODS, settings=SETTINGS, out=tmp_path, progress=False
    )
    first = {i.uid for i in instances()}
    assert _comparable([r for r in resumed if r["uid"] in first]) == _comparable(local_rows)
    assert set(_line_counts(tmp_path).values()) == {1}
