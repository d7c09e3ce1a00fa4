"""`heta-lens eval causal` / `eval robustness` end to end on SmolLM2-135M (offline)."""

import json

import pytest

from heta_lens.cli import main
from heta_lens.evals.datasets.rephrasing import pair_instances, read_pairs

pytestmark = pytest.mark.slow


@pytest.mark.usefixtures("no_network")
def test_eval_causal_table_trace_and_resume(tmp_path, capsys):
    out = tmp_path / "causal"
    argv = [
        "eval", "causal", "--limit", "1", "--methods", "attention_rollout,last_layer_attention",
        "--causal-draws", "1", "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Patch-Corr" in printed and "Intervention@5" in printed and "| random |" in printed
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert {r["method"] for r in rows} == {"last_layer_attention", "attention_rollout", "random"}
    for row in rows:
        assert set(row["metrics"]) == {"patch_corr", "intervention_at_5", "misattribution"}
        assert 0.0 <= row["metrics"]["misattribution"] <= 1.0
    trace = json.loads((out / "trace.json").read_text())
    assert len(trace["log_p"]) == 30  # SmolLM2's layers
    assert (out / "trace.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (out / "summary.md").read_text()
    assert main([*argv, "--no-plots"]) == 0  # resumes: nothing recomputed, same table
    assert (out / "summary.md").read_text() == summary


@pytest.mark.usefixtures("no_network")
def test_eval_robustness_sensitivity_and_rephrasing(tmp_path, capsys):
    out = tmp_path / "robust"
    argv = [
        "eval", "robustness", "--limit", "2", "--methods", "occlusion",
        "--sensitivity-draws", "2", "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Sensitivity" in printed and "rephrasing ρ" in printed
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert len(rows) == 4 * 2  # 2 pairs × 2 forms × (occlusion + random)
    assert all(r["metrics"]["sensitivity"] >= 0 for r in rows)
    assert "| occlusion | 2 |" in (out / "summary.md").read_text()


def test_every_rephrasing_pair_aligns_on_smollm2(smollm2):
    for pair in read_pairs():
        active, passive = pair_instances(smollm2, pair)
        assert active.tokens[active.targets[0]] == passive.tokens[passive.targets[0]]
        assert len(active.regions) == len(passive.regions) == 6


@pytest.mark.usefixtures("no_network")
def test_eval_decoding_small_grid(tmp_path, capsys):
    out = tmp_path / "decoding"
    argv = [
        "eval", "decoding", "--limit", "1", "--grid", "small", "--methods", "attention_rollout",
        "--metrics", "hard", "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "max relative change" in printed and "| attention_rollout | hard_nc |" in printed
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    uids = {r["uid"] for r in rows}
    assert "tellmewhy-000" in uids  # the greedy instance is the reference
    assert 2 <= len(uids) <= 10  # + one per distinct sampled continuation (9 grid points)
    assert all(len(r["scores"]) == r["ctx"] for r in rows)
