"""``heta-lens attribute --input/--out/--aggregate`` on a tiny local HF model directory,
including a run killed with SIGKILL and resumed."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import heta_lens as H
from heta_lens.cli import main
from heta_lens.models import load_model

ROOT = Path(__file__).resolve().parents[2]
N_RECORDS = 40


def _records(path: Path, n: int) -> Path:
    words = [f"w{i}" for i in range(3, 10)] + [f"w{i}" for i in range(30, 50)]
    lines = []
    for i in range(n):
        text = " ".join(words[(i + j) % len(words)] for j in range(4 + i % 5))
        record = {"id": f"r{i}", "text": text}
        if i % 3 == 1:
            record["target_text"] = f" w{30 + i % 20}"
        elif i % 3 == 2:
            record["target_index"] = 2
        lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.bridge
def test_input_out_equals_the_library_and_prints_the_word_table(model_dir, tmp_path, capsys):
    records = _records(tmp_path / "in.jsonl", 3)
    out = tmp_path / "out.jsonl"
    argv = ["attribute", "--model", str(model_dir), "--input", str(records), "--out", str(out)]
    assert main([*argv, "--preset", "fast", "--aggregate", "word"]) == 0
    assert "wrote 3 results" in capsys.readouterr().err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    model = load_model(str(model_dir))
    spec = H.get_method("heta").with_preset("fast")
    expected = H.attribute_many(model, H.read_records(records), method=spec, progress=False)
    for line, want in zip(lines, expected, strict=True):
        got = H.read_results(out)[line["key"]]
        torch.testing.assert_close(got.scores, want.scores.double(), rtol=0, atol=0)
        assert line["config"] == spec.default_config.to_dict() and "aggregate" in line
    prompt = ["attribute", "w5 w7 w3 w9 w31", "--model", str(model_dir), "--target-index", "4"]
    page = tmp_path / "p.html"
    assert main([*prompt, "--aggregate", "word", "--html", str(page)]) == 0
    printed = capsys.readouterr().out
    words = printed.split("(4 words)")[1]  # BOS, w5, w7, w3: the context of target w9
    assert all(f"'{w}'" in words for w in ("w1", "w5", "w7", "w3")) and "'w9'" not in words
    assert 'data-view="group">words</button>' in page.read_text()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--input", "in.jsonl"], "--input needs --out"),
        (["--out", "o.jsonl", "w5"], "--out goes with --input"),
        ([], "give the prompt TEXT, or --input"),
        (["w5", "--input", "in.jsonl", "--out", "o.jsonl"], "either TEXT or --input"),
        (["--input", "in.jsonl", "--out", "o.jsonl", "--span", " w6"], "--span apply to one"),
        (["--input", "in.jsonl", "--out", "o.jsonl", "--json", "x"], "--json apply to one"),
        (["--input", "bad.jsonl", "--out", "o.jsonl"], "bad.jsonl:1: unknown record field"),
    ],
)
def test_bad_flag_combinations_exit_2_before_loading(flags, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.jsonl").write_text('{"text": "w5 w6"}\n')
    (tmp_path / "bad.jsonl").write_text('{"prompt": "w5 w6"}\n')
    assert main(["attribute", "--model", "/no/such/model", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "loading" not in err


def _complete_lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    return path.read_text().split("\n")[:-1]


@pytest.mark.bridge
def test_sigkill_mid_run_then_rerun_gives_the_uninterrupted_file(model_dir, tmp_path):
    records = _records(tmp_path / "in.jsonl", N_RECORDS)
    killed, whole = tmp_path / "killed.jsonl", tmp_path / "whole.jsonl"
    env = {**os.environ, "HETA_LENS_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    argv = ["attribute", "--model", str(model_dir), "--input", str(records), "--n-probes", "2"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "heta_lens.cli", *argv, "--out", str(killed)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while len(_complete_lines(killed)) < 3 and proc.poll() is None:
            assert time.monotonic() < deadline, "the run wrote nothing in 300 s"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL  # it was killed, not finished
    assert 3 <= len(_complete_lines(killed)) < N_RECORDS
    done = subprocess.run(  # resume the killed run
        [sys.executable, "-m", "heta_lens.cli", *argv, "--out", str(killed)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert main([*argv, "--out", str(whole)]) == 0  # the whole file at once, in this process
    lines = _complete_lines(killed)
    assert lines == _complete_lines(whole)  # same lines, same order, nothing lost
    assert killed.read_text() == whole.read_text()  # and nothing after the last line
    keys = [json.loads(line)["key"] for line in lines]
    assert keys == [f"r{i}" for i in range(N_RECORDS)]  # no duplicates, input order
