"""The eval suites run from the clone alone: vendored data, an empty cache, no ../shared.

Each `heta-lens eval DATASET --limit 1` runs in a subprocess whose HOME is a new empty folder
(so the model, tokenizer and eval caches start empty), with ``HETA_LENS_DATA`` and
``HETA_LENS_CACHE`` unset and a working directory outside the checkout; the data can then only
come from the copy shipped in the package. The instance it computes must be one of the stored
run's (same uid, target position, target token and context length).
"""

import glob
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import isolated_env

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _stored(dataset: str) -> set[tuple]:
    files = glob.glob(str(ROOT / "evals" / "runs" / f"{dataset}-smollm2-135m" / "rows*.jsonl"))
    rows = [json.loads(line) for f in files for line in Path(f).read_text().splitlines()]
    return {(r["uid"], r["target"], r["target_token"], r["ctx"]) for r in rows}


@pytest.mark.parametrize("dataset", ["longra", "tellmewhy", "wikitext", "curated"])
def test_eval_limit_one_from_the_vendored_data(dataset, tmp_path):
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "heta_lens.cli", "eval", dataset, "--limit", "1",
        "--methods", "attention_rollout", "--metrics", "soft", "--n-draws", "1",
        "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(
        cmd,
        cwd=tmp_path,
        env=isolated_env(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert rows and {r["method"] for r in rows} == {"attention_rollout", "random"}
    computed = {(r["uid"], r["target"], r["target_token"], r["ctx"]) for r in rows}
    assert computed <= _stored(dataset), computed - _stored(dataset)
    assert not (tmp_path / "shared").exists()
    assert (tmp_path / "home" / ".cache" / "heta_lens").is_dir()  # caches went to the new HOME
