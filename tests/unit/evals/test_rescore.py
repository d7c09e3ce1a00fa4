"""Rescoring a stored run equals running it afresh under the new settings; it resumes."""

import json

import pytest

from heta_lens.evals.rescore import rescore_run
from heta_lens.evals.runner import run_eval
from heta_lens.evals.settings import EvalSettings
from heta_lens.evals.stored import read_run
from heta_lens.evals.summary import markdown_table, summarize
from heta_lens.testing import tiny_bridge
from tests.unit.evals.test_runner import instances

pytestmark = pytest.mark.bridge

METHODS = ["occlusion", "attention_rollout"]
LEGACY = EvalSettings(dataset="toy", model="tiny-bridge", n_draws=2, protocol="legacy")
CONTROLS = ("rank", "matched", "perm")


def _by_key(rows):
    return {r["key"]: r for r in rows}


def test_rescored_rows_are_a_fresh_run_under_the_new_settings(tmp_path):
    model = tiny_bridge()
    stored = run_eval(
        tiny_bridge, instances(), methods=METHODS, settings=LEGACY, out=tmp_path / "old",
        model=model, progress=False,
    )  # fmt: skip
    done = rescore_run(
        tmp_path / "old", tmp_path / "new", model=model, instances=instances(),
        protocol="standard", controls=CONTROLS,
    )  # fmt: skip
    assert done.n_written == len(stored) and done.missing_uids == ()
    fresh = run_eval(
        tiny_bridge, instances(), methods=METHODS, settings=done.settings,
        out=tmp_path / "fresh", model=model, progress=False,
    )  # fmt: skip
    new, again = _by_key(done.rows), _by_key(fresh)
    assert new.keys() == again.keys()
    for key, row in new.items():
        # float64 scores round-trip JSON exactly, so every number is the fresh run's
        assert row["scores"] == again[key]["scores"]
        assert row["metrics"] == again[key]["metrics"]
        assert row["curves"] == again[key]["curves"]
        assert {f"soft_nc@{c}" for c in CONTROLS} <= set(row["metrics"])
    # the protocol changed the numbers (the sink is no longer maskable)
    old = _by_key(stored)
    assert any(old[k]["metrics"]["hard_nc"] != new[k]["metrics"]["hard_nc"] for k in new)
    assert any(
        old[k]["metrics"]["dsa"] != new[k]["metrics"]["dsa"]
        for k in new
        if "dsa" in new[k]["metrics"]
    )
    # the new directory is an ordinary run: read back, summarised with the control columns
    report = read_run(tmp_path / "new", n_resamples=50)
    assert report.settings.protocol == "standard" and report.settings.controls == CONTROLS
    table = markdown_table(summarize(list(done.rows), n_resamples=50))
    assert "Soft-NC ln-ratio @rank" in table and "Soft-NS ln-ratio @perm" in table


def test_rescoring_resumes_and_refuses_what_it_cannot_do(tmp_path):
    model = tiny_bridge()
    run_eval(
        tiny_bridge, instances(), methods=["occlusion"], settings=LEGACY, out=tmp_path / "old",
        model=model, progress=False,
    )  # fmt: skip
    first = rescore_run(
        tmp_path / "old", tmp_path / "new", model=model, instances=instances()[:2],
        controls=("rank",),
    )  # fmt: skip
    assert first.missing_uids == ("toy/2",) and first.settings.protocol == "legacy"
    path = tmp_path / "new" / "rows.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20])  # a row cut by kill -9
    second = rescore_run(
        tmp_path / "old", tmp_path / "new", model=model, instances=instances()[:2],
        controls=("rank",),
    )  # fmt: skip
    assert second.n_written == 1
    assert _by_key(second.rows) == _by_key(first.rows)
    assert json.loads((tmp_path / "new" / "run.json").read_text())["settings"]["controls"] == [
        "rank"
    ]
    with pytest.raises(ValueError, match="different settings"):
        rescore_run(tmp_path / "old", tmp_path / "new", model=model, instances=instances())
    with pytest.raises(ValueError, match="out is the source"):
        rescore_run(tmp_path / "old", tmp_path / "old", model=model, instances=instances())
    with pytest.raises(ValueError, match=r"cannot change .*\['dataset', 'seed'\]"):
        rescore_run(
            tmp_path / "old", tmp_path / "x", model=model, instances=instances(),
            dataset="other", seed=1,
        )  # fmt: skip
    assert not (tmp_path / "x").exists()


def test_a_method_subset_rescores_only_those_rows_and_equals_the_full_rescoring(tmp_path):
    model = tiny_bridge()
    run_eval(
        tiny_bridge, instances(), methods=METHODS, settings=LEGACY, out=tmp_path / "old",
        model=model, progress=False,
    )  # fmt: skip
    kw = {"model": model, "instances": instances(), "protocol": "standard", "controls": ("rank",)}
    full = _by_key(rescore_run(tmp_path / "old", tmp_path / "all", **kw).rows)
    part = rescore_run(tmp_path / "old", tmp_path / "some", methods=["occlusion", "random"], **kw)
    assert {r["method"] for r in part.rows} == {"occlusion", "random"}
    assert part.n_written == sum(r["method"] in ("occlusion", "random") for r in full.values())
    for key, row in _by_key(part.rows).items():
        assert row["metrics"] == full[key]["metrics"]
    with pytest.raises(ValueError, match="no stored rows for 'saliency'"):
        rescore_run(tmp_path / "old", tmp_path / "x", methods=["saliency"], **kw)


LOGP = {
    "soft_ns_logp", "soft_nc_logp", "hard_nc_logp", "hard_ns_logp", "aopc_deletion_logp",
    "aopc_insertion_logp",
}  # fmt: skip


def _cells(table: str) -> dict[str, dict[str, str]]:
    """Method → column title → cell of a markdown summary table."""
    lines = [line.strip("|").split(" | ") for line in table.splitlines() if line.startswith("| ")]
    titles = [t.strip() for t in lines[0]]
    return {
        row[0].strip(): dict(zip(titles, (c.strip() for c in row), strict=True))
        for row in lines[1:]
    }


def _strip_logp(row):
    kept = {k: v for k, v in row["metrics"].items() if k.split("@")[0] not in LOGP}
    return {**row, "metrics": kept}


def test_rows_before_the_target_side_metrics_summarise_and_rescore(tmp_path):
    """Rows stored before the ``*_logp`` keys existed summarise as they did (no new column)
    and rescoring them under the same settings adds exactly a fresh run's keys and values."""
    model = tiny_bridge()
    settings = EvalSettings(dataset="toy", model="tiny-bridge", n_draws=2, controls=("rank",))
    fresh = run_eval(
        tiny_bridge, instances(), methods=METHODS, settings=settings, out=tmp_path / "fresh",
        model=model, progress=False,
    )  # fmt: skip
    assert all(
        LOGP | {"soft_ns_logp@rank", "soft_nc_logp@rank"} <= set(r["metrics"]) for r in fresh
    )
    old = tmp_path / "old"
    old.mkdir()
    (old / "run.json").write_text((tmp_path / "fresh" / "run.json").read_text())
    stripped = [_strip_logp(r) for r in fresh]
    (old / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stripped))
    before = markdown_table(summarize(stripped, n_resamples=50))
    assert "log p(t)" not in before
    assert read_run(old, n_resamples=50).body == before
    fresh_table = markdown_table(summarize(fresh, n_resamples=50))
    for title in ("Soft-NS log p(t) ln-ratio", "Soft-NC log p(t) ln-ratio @rank",
                  "hard-top-k NC (Δlog p(t))", "AOPC insertion (log p(t))"):  # fmt: skip
        assert title in fresh_table
    # every column of the old table keeps its cells when the target-side ones are added
    old_cells, new_cells = _cells(before), _cells(fresh_table)
    assert old_cells.keys() == new_cells.keys() == {*METHODS, "random"}
    for method, cells in old_cells.items():
        assert cells == {k: v for k, v in new_cells[method].items() if k in cells}
    done = rescore_run(old, tmp_path / "new", model=model, instances=instances())
    new, again = _by_key(done.rows), _by_key(fresh)
    assert new.keys() == again.keys()
    for key, row in new.items():
        assert row["metrics"] == again[key]["metrics"]
