"""The curated answer filter: ``top1`` keeps exactly the rows whose answer is the model's greedy
token (explicit forward), ``--curated-filter`` reaches run.json, stored runs keep their identity
as ``top10``, and rescoring may narrow a run's filter but not widen it."""

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from heta_lens.cli import main
from heta_lens.evals.datasets import PROMPT_TEMPLATE, filter_top_k, load_curated
from heta_lens.evals.rescore import rescored_settings
from heta_lens.evals.runner import check_run_file
from heta_lens.evals.settings import EvalSettings
from heta_lens.evals.stored import read_settings
from heta_lens.evals.suite_settings import SuiteSettings
from heta_lens.flags import from_flags
from heta_lens.models import load_model
from tests.unit.evals.test_suite import _eval_parser

pytestmark = pytest.mark.bridge

ROOT = Path(__file__).resolve().parents[3]
STORED_RUNS = sorted(p.parent for p in (ROOT / "evals" / "runs").glob("*/run.json"))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HETA_LENS_CACHE", str(tmp_path / "cache"))


# Word ids whose text the tiny tokenizer reads back as one token: "w1x"/"w2x" are split into
# the special BOS/EOS token "w1"/"w2" and an unknown rest when the tokenizer is reloaded.
SAFE = (3, 4, 5, 6, 7, 8, 9, *range(30, 50))


def _prompt(k: int) -> dict[str, Any]:
    return {
        "id": f"c{k}",
        "narrative": f"w5 w{SAFE[k]}",
        "support": f"w7 w8 w{SAFE[k + 1]}",
        "question": f"w{SAFE[k + 2]} w8",
        "support_spans": [[3, 5]],
    }


def _next_log_probs(model: Any, row: dict[str, Any]) -> torch.Tensor:
    """Oracle: the model's next-token log-probabilities after the prompt, one plain forward."""
    prompt = PROMPT_TEMPLATE.format(**{k: row[k] for k in ("narrative", "support", "question")})
    with torch.no_grad():
        return model(model.to_tokens(prompt))[0, -1].double().log_softmax(-1)


@pytest.fixture(scope="module")
def rows_and_model(model_dir, tmp_path_factory) -> tuple[Path, Any, list[str], list[int]]:
    """Eight rows whose answer is, for even k, the tiny model's most likely safe word token
    (found by an explicit forward; its greedy token when that is a safe word) and otherwise
    its 2nd, 5th or 12th most likely one."""
    model = load_model(str(model_dir))
    rows, greedy, ranks = [], [], []
    for k in range(8):
        row = _prompt(k)
        log_p = _next_log_probs(model, row)
        order = [int(i) for i in log_p.argsort(descending=True) if int(i) in SAFE]
        rank_wanted = 0 if k % 2 == 0 else (1, 4, 11)[k // 2 % 3]
        answer = order[rank_wanted]
        row["answer"] = f"w{answer}"
        rows.append(row)
        ranks.append(int((log_p > log_p[answer]).sum()))
        if int(log_p.argmax()) == answer:
            greedy.append(row["id"])
    path = tmp_path_factory.mktemp("filter") / "c.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, model, greedy, ranks


def test_top1_keeps_exactly_the_rows_whose_answer_is_the_greedy_token(rows_and_model):
    path, model, greedy, ranks = rows_and_model
    assert greedy and set(greedy) <= {"c0", "c2", "c4", "c6"}  # construction, checked
    top1 = load_curated(model, data_path=path, top_k=filter_top_k("top1"), progress=False)
    assert [i.uid for i in top1] == greedy
    assert all(i.meta["answer_rank"] == 0 for i in top1)
    top10 = load_curated(model, data_path=path, top_k=filter_top_k("top10"), progress=False)
    assert [i.uid for i in top10] == [f"c{k}" for k in range(8) if ranks[k] < 10]
    assert set(greedy) < {i.uid for i in top10}


def test_cli_curated_filter_reaches_run_json_and_keeps_the_greedy_rows(
    rows_and_model, model_dir, tmp_path
):
    path, _, greedy, _ = rows_and_model
    out = tmp_path / "run"
    argv = [
        "eval", "curated", "--model", str(model_dir), "--data", str(path), "--curated-filter",
        "top1", "--methods", "occlusion", "--metrics", "soft", "--n-draws", "1", "--no-plots",
        "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((out / "run.json").read_text())["settings"]["curated_filter"] == "top1"
    assert read_settings(out).curated_filter == "top1"
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert sorted({r["uid"] for r in rows}) == greedy
    assert "(answer filter top1)" in (out / "summary.md").read_text()
    # resuming under the default filter would mix instance sets: refused
    with pytest.raises(ValueError, match=r"different settings \(curated_filter\)"):
        check_run_file(out, dataclasses.replace(read_settings(out), curated_filter="top10"))


def test_filter_names_flags_and_validation():
    assert (filter_top_k("top1"), filter_top_k("top10"), filter_top_k("top50")) == (1, 10, 50)
    for bad in ("top0", "top", "Top1", "top-1", "1", "top01"):
        with pytest.raises(ValueError, match="unknown curated filter"):
            filter_top_k(bad)
    settings = from_flags(
        SuiteSettings, _eval_parser().parse_args(["eval", "curated", "--curated-filter", "top1"])
    )
    assert settings.eval_settings().curated_filter == "top1"
    assert SuiteSettings(dataset="curated").eval_settings().curated_filter == "top10"
    with pytest.raises(ValueError, match="unknown curated filter 'best'"):
        EvalSettings(dataset="curated", model="m", curated_filter="best")
    with pytest.raises(ValueError, match="dataset 'longra' is not filtered by it"):
        EvalSettings(dataset="longra", model="m", curated_filter="top1")
    with pytest.raises(ValueError, match="dataset 'longra' is not filtered by it"):
        SuiteSettings(dataset="longra", curated_filter="top1")
    assert main(["eval", "longra", "--curated-filter", "top1"]) == 2


def test_rescoring_may_narrow_the_filter_but_not_widen_it():
    stored = EvalSettings(dataset="curated", model="m")
    assert rescored_settings(stored, curated_filter="top1").curated_filter == "top1"
    narrow = dataclasses.replace(stored, curated_filter="top1")
    with pytest.raises(ValueError, match="can only narrow the curated filter"):
        rescored_settings(narrow, curated_filter="top10")


@pytest.mark.parametrize("run", STORED_RUNS, ids=lambda p: p.name)
def test_stored_runs_read_as_top10_with_the_same_identity(run, tmp_path):
    """No stored run.json records a filter: each reads back as top10, is accepted by the
    resume check unchanged, and a curated one is refused under top1."""
    stored = json.loads((run / "run.json").read_text())
    assert "curated_filter" not in stored["settings"]
    settings = read_settings(run)
    assert settings.curated_filter == "top10"
    copy = tmp_path / run.name
    copy.mkdir()
    shutil.copy(run / "run.json", copy / "run.json")
    check_run_file(copy, settings)  # same identity: no error
    assert json.loads((copy / "run.json").read_text()) == stored  # and nothing rewritten
    if settings.dataset == "curated":
        with pytest.raises(ValueError, match=r"different settings \(curated_filter\)"):
            check_run_file(copy, dataclasses.replace(settings, curated_filter="top1"))
    else:
        with pytest.raises(ValueError, match="is not filtered by it"):
            dataclasses.replace(settings, curated_filter="top1")
