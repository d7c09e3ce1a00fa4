"""`heta-lens eval` end to end on SmolLM2-135M (offline): table printed, rerun resumes."""

import json

import pytest

from heta_lens.cli import main

pytestmark = pytest.mark.slow


@pytest.mark.usefixtures("no_network")
def test_eval_longra_prints_table_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [
        "eval",
        "longra",
        "--limit",
        "2",
        "--methods",
        "heta,attention_rollout",
        "--n-draws",
        "1",
        "--metrics",
        "soft,hard",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Soft-NS ln-ratio" in printed and "attention_rollout" in printed
    assert "| random |" in printed
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 3  # 2 instances × (2 methods + random)
    assert {r["method"] for r in rows} == {"heta", "attention_rollout", "random"}
    assert all(len(r["scores"]) == r["ctx"] for r in rows)
    summary = (out / "summary.md").read_text()
    assert "| heta vs | Soft-NS (ln-ratio) | higher | Soft-NC (ln-ratio) | higher |" in summary
    assert "| attention_rollout | " in summary.split("| heta vs |")[1]
    assert main(argv) == 0  # resumes: nothing recomputed, same table
    assert (out / "rows.jsonl").read_text().count("\n") == 6
    assert (out / "summary.md").read_text() == summary


def test_eval_bad_input_messages(tmp_path, capsys):
    assert main(["eval", "longra", "--methods", "lime", "--out", str(tmp_path / "x")]) == 2
    assert "unknown method 'lime'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    missing = tmp_path / "nodata"
    code = main(
        [
            "eval",
            "longra",
            "--methods",
            "occlusion",
            "--data-dir",
            str(missing),
            "--out",
            str(tmp_path / "y"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "--data-dir" in err
    assert not (tmp_path / "y").exists()
