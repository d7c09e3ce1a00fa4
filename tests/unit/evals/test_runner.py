"""The eval runner: kill -9 mid-run and resume to the same rows; workers; refusals."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from heta_lens.evals.datasets import EvalInstance
from heta_lens.evals.runner import run_eval
from heta_lens.evals.settings import EvalSettings
from heta_lens.evals.store import read_rows
from heta_lens.evals.summary import summarize
from heta_lens.testing import tiny_bridge
from tests.unit.evals.test_lifecycle import FirstLoad

pytestmark = pytest.mark.bridge

ROOT = Path(__file__).resolve().parents[3]
METHODS = ["heta", "heta_kl_only", "attention_rollout", "occlusion"]
SETTINGS = EvalSettings(
    dataset="toy", model="tiny-bridge", n_draws=2, heta_overrides=(("n_probes", 1),)
)


def instances() -> list[EvalInstance]:
    seqs = [[1, 5, 7, 3, 9, 11, 4, 8], [1, 2, 6, 6, 30, 12, 9], [1, 40, 41, 3, 3, 17, 22, 5]]
    out = []
    for k, seq in enumerate(seqs):
        regions = {}
        if k == 0:  # a curated-like instance: alignment metrics run on it
            regions = {"narrative": (1, 2), "sciq": (3, 4, 5), "support": (4,), "question": (6,)}
        out.append(
            EvalInstance(
                uid=f"toy/{k}",
                dataset="toy",
                text="",
                tokens=tuple(seq),
                targets=(len(seq) - 3, len(seq) - 1),
                regions=regions,
            )
        )
    return out


def _comparable(rows):
    return sorted(
        ({k: v for k, v in r.items() if k != "seconds"} for r in rows), key=lambda r: r["key"]
    )


SCRIPT = """
import sys
from pathlib import Path
from heta_lens.testing import tiny_bridge
from tests.unit.evals.test_runner import METHODS, SETTINGS, instances
from heta_lens.evals.runner import run_eval
run_eval(tiny_bridge, instances(), methods=METHODS, settings=SETTINGS, out=Path(sys.argv[1]),
         progress=False)
"""


def test_kill_9_then_resume_gives_the_uninterrupted_result(tmp_path):
    clean = run_eval(
        tiny_bridge,
        instances(),
        methods=METHODS,
        settings=SETTINGS,
        out=tmp_path / "clean",
        progress=False,
    )
    assert len(clean) == 3 * 2 * (len(METHODS) + 1)
    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(killed)], cwd=ROOT, env=env)
    rows_file = killed / "rows.jsonl"
    deadline = time.monotonic() + 600  # generous: a loaded 2-core CI machine is slow to start
    while not (rows_file.exists() and rows_file.read_text().count("\n") >= 4):
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no 4 rows within 600 s: nothing to kill mid-run"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = read_rows(killed)
    assert 4 <= len(partial) < len(clean)
    with rows_file.open("a") as handle:  # as if the kill cut a line in half
        handle.write('{"key": "toy/2|7|occlusion", "scor')
    resumed = run_eval(
        tiny_bridge, instances(), methods=METHODS, settings=SETTINGS, out=killed, progress=False
    )
    assert _comparable(resumed) == _comparable(clean)
    again = run_eval(
        tiny_bridge, instances(), methods=METHODS, settings=SETTINGS, out=killed, progress=False
    )  # nothing left to do: nothing is recomputed
    assert rows_file.read_text().count("\n") == len(clean)
    assert _comparable(again) == _comparable(clean)
    a, b = summarize(clean), summarize(resumed)
    assert [repr((s.method, s.values)) for s in a] == [repr((s.method, s.values)) for s in b]


def test_workers_give_the_same_rows(tmp_path):
    one = run_eval(
        tiny_bridge,
        instances(),
        methods=METHODS,
        settings=SETTINGS,
        out=tmp_path / "one",
        progress=False,
    )
    two = run_eval(
        tiny_bridge,
        instances(),
        methods=METHODS,
        settings=SETTINGS,
        out=tmp_path / "two",
        workers=2,
        progress=False,
    )
    assert _comparable(one) == _comparable(two)
    assert sorted(p.name for p in (tmp_path / "two").glob("rows*.jsonl")) == [
        "rows-0.jsonl",
        "rows-1.jsonl",
    ]


def test_workers_share_one_queue_so_a_slow_worker_holds_back_one_item(tmp_path):
    """Items go to whichever worker is free: while one worker is stuck in its first item,
    the other does every other item (static halves would leave half the items waiting)."""
    many = [
        EvalInstance(uid=f"toy/{k}", dataset="toy", text="", tokens=(1, 5 + k, 7, 9), targets=(3,))
        for k in range(24)
    ]
    out = tmp_path / "run"
    rows = run_eval(
        FirstLoad(tmp_path / "claim", delay=45.0),
        many,
        methods=["occlusion"],
        settings=EvalSettings(dataset="toy", model="tiny-bridge", n_draws=1),
        out=out,
        workers=2,
        progress=False,
    )
    assert len(rows) == len(many) * 2  # occlusion + random for every item, each once
    per_file = sorted(len(read_rows_file(f)) for f in out.glob("rows-*.jsonl"))
    assert per_file == [2, 2 * (len(many) - 1)]


def read_rows_file(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line]


def test_other_settings_refused_and_bad_methods_write_nothing(tmp_path):
    run_eval(
        tiny_bridge,
        instances()[:1],
        methods=["occlusion"],
        settings=SETTINGS,
        out=tmp_path / "r",
        progress=False,
    )
    other = EvalSettings(dataset="toy", model="tiny-bridge", n_draws=3)
    with pytest.raises(ValueError, match="different settings .*n_draws"):
        run_eval(
            tiny_bridge,
            instances()[:1],
            methods=["occlusion"],
            settings=other,
            out=tmp_path / "r",
            progress=False,
        )
    for methods, message in [
        (["nope"], "unknown method 'nope'"),
        ([], "no method"),
        (["random"], "always evaluated"),
    ]:
        with pytest.raises(ValueError, match=message):
            run_eval(
                tiny_bridge,
                instances(),
                methods=methods,
                settings=SETTINGS,
                out=tmp_path / "bad",
                progress=False,
            )
        assert not (tmp_path / "bad").exists()


def test_alignment_metrics_only_where_a_support_region_exists(tmp_path):
    rows = run_eval(
        tiny_bridge,
        instances(),
        methods=["attention_rollout"],
        settings=SETTINGS,
        out=tmp_path / "a",
        progress=False,
    )
    for row in rows:
        has = "dsa" in row["metrics"]
        assert has == (row["uid"] == "toy/0")
        assert {"soft_ns", "soft_nc", "hard_nc", "aopc_deletion"} <= set(row["metrics"])
        assert len(row["curves"]["deletion"]) == len(SETTINGS.aopc_fractions)
