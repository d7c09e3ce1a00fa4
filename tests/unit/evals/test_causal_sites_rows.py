"""Causal sites in the eval stack: settings and run.json identity, the CLI flag, row keys,
summary tables, rescoring, and the causal suite's methods."""

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from heta_lens.evals.evaluate import evaluate_target
from heta_lens.evals.metrics.causal import causal_scores, token_effects
from heta_lens.evals.reports import figure_values
from heta_lens.evals.rescore import rescore_row, rescore_run
from heta_lens.evals.runner import check_run_file, run_eval
from heta_lens.evals.settings import EvalSettings, row_seed
from heta_lens.evals.stored import read_settings
from heta_lens.evals.suite import suite_methods
from heta_lens.evals.suite_settings import DEFAULT_METHODS, SuiteSettings
from heta_lens.evals.summary import MEAN_METRICS, markdown_table, mean_metrics, summarize
from heta_lens.flags import from_flags
from heta_lens.testing import tiny_bridge
from tests.unit.evals.test_runner import instances
from tests.unit.evals.test_suite import _eval_parser

pytestmark = pytest.mark.bridge

ROOT = Path(__file__).resolve().parents[3]
STORED_RUNS = sorted(p.parent for p in (ROOT / "evals" / "runs").glob("*/run.json"))
SITED = EvalSettings(
    dataset="toy",
    model="tiny-bridge",
    n_draws=1,
    heta_overrides=(("n_probes", 1),),
    metrics=("causal",),
    causal_draws=2,
    causal_sites=("embed", "edges", "mid"),
)


def test_settings_validate_sites():
    assert EvalSettings(dataset="toy", model="m").causal_sites == ("embed",)
    for sites, message in [
        (("edge",), "unknown causal site"),
        ((), "at least one site"),
        (("mid", "mid"), "repeats a site"),
    ]:
        with pytest.raises(ValueError, match=message):
            EvalSettings(dataset="toy", model="m", causal_sites=sites)


@pytest.mark.parametrize("run", STORED_RUNS, ids=lambda p: p.name)
def test_stored_runs_keep_their_identity(run, tmp_path):
    """No stored run.json records sites: each reads back as the embed site alone, resumes
    under the same settings (nothing rewritten) and is refused with another site."""
    stored = json.loads((run / "run.json").read_text())
    assert "causal_sites" not in stored["settings"]
    settings = read_settings(run)
    assert settings.causal_sites == ("embed",)
    copy = tmp_path / run.name
    copy.mkdir()
    shutil.copy(run / "run.json", copy / "run.json")
    check_run_file(copy, settings)
    assert json.loads((copy / "run.json").read_text()) == stored
    with pytest.raises(ValueError, match=r"different settings \(causal_sites\)"):
        check_run_file(copy, dataclasses.replace(settings, causal_sites=("embed", "edges")))


def test_cli_flag_and_causal_suite_methods():
    parse = _eval_parser().parse_args
    suite = from_flags(SuiteSettings, parse(["eval", "causal", "--causal-site", "edges,mid"]))
    assert suite.eval_settings().causal_sites == ("edges", "mid")
    assert suite_methods(suite) == [*DEFAULT_METHODS, "heta_kl_only", "kl_occlusion"]
    plain = from_flags(SuiteSettings, parse(["eval", "longra"]))
    assert plain.eval_settings().causal_sites == ("embed",)
    assert suite_methods(plain) == list(DEFAULT_METHODS)
    chosen = from_flags(SuiteSettings, parse(["eval", "causal", "--methods", "occlusion"]))
    assert suite_methods(chosen) == ["occlusion"]
    with pytest.raises(ValueError, match="unknown causal site"):
        from_flags(SuiteSettings, parse(["eval", "causal", "--causal-site", "edge"]))


def test_rows_carry_one_set_of_causal_keys_per_site():
    model = tiny_bridge()
    instance = instances()[0]
    target = instance.targets[-1]
    rows = list(evaluate_target(model, instance, target, methods=["occlusion"], settings=SITED))
    embed_only = list(
        evaluate_target(
            model,
            instance,
            target,
            methods=["occlusion"],
            settings=dataclasses.replace(SITED, causal_sites=("embed",)),
        )
    )
    tokens = torch.tensor(instance.tokens)
    for row, alone in zip(rows, embed_only, strict=True):
        base = ("patch_corr", "intervention_at_5", "misattribution")
        assert set(row["metrics"]) == {f"{m}{s}" for m in base for s in ("", "@edges", "@mid")}
        assert {k: row["metrics"][k] for k in base} == alone["metrics"]  # embed: unchanged
        for site in ("edges", "mid"):
            fx = token_effects(
                model,
                tokens,
                target=target,
                n_draws=2,
                generator=torch.Generator().manual_seed(
                    row_seed(0, instance.uid, target, "causal")
                ),
                site=site,
            )
            direct = causal_scores(
                model, tokens, target=target, scores=torch.tensor(row["scores"]), effects=fx
            )
            assert row["metrics"][f"patch_corr@{site}"] == pytest.approx(direct.patch_corr)
            assert row["metrics"][f"intervention_at_5@{site}"] == pytest.approx(
                direct.intervention_at_k
            )
            assert row["metrics"][f"misattribution@{site}"] == direct.misattribution
    # rescoring keeps every site's causal metrics
    rescored = rescore_row(
        rows[0], instance, model=model, settings=dataclasses.replace(SITED, metrics=())
    )
    assert rescored["metrics"] == rows[0]["metrics"]


def _row(uid: str, method: str, metrics: dict[str, float]) -> dict:
    row = {"uid": uid, "target": 3, "method": method, "metrics": metrics, "seconds": 1.0}
    return {**row, "scores": [0.0, 1.0, 2.0]}


def test_summary_tables_show_site_columns_and_old_rows_still_load():
    old = [
        _row(u, m, {"patch_corr": v, "intervention_at_5": 2 * v, "misattribution": 0.1})
        for u in "abc"
        for m, v in (("heta", 0.5), ("random", 0.0))
    ]
    new = [
        {**r, "metrics": {**r["metrics"], "patch_corr@edges": r["metrics"]["patch_corr"] + 1}}
        for r in old
    ]
    old_table = markdown_table(summarize(old, n_resamples=50))
    assert "@edges" not in old_table and "Patch-Corr" in old_table
    assert mean_metrics({"patch_corr"}) == MEAN_METRICS
    summaries = summarize(new, n_resamples=50)
    heta = next(s for s in summaries if s.method == "heta")
    assert heta.values["patch_corr@edges"].mean == pytest.approx(1.5)
    assert heta.values["patch_corr"].mean == pytest.approx(0.5)
    table = markdown_table(summaries)
    titles = table.splitlines()[0].split(" | ")
    assert titles.index("Patch-Corr @edges") == titles.index("Misattribution") + 1
    assert figure_values(new, [], seed=0)["heta"]["Patch-Corr @edges"].mean == pytest.approx(1.5)


def test_rescoring_adds_a_site_as_a_fresh_run_would(tmp_path):
    model = tiny_bridge()
    embed = dataclasses.replace(SITED, causal_sites=("embed",))
    run_eval(
        tiny_bridge, instances()[:1], methods=["occlusion"], settings=embed,
        out=tmp_path / "old", model=model, progress=False,
    )  # fmt: skip
    done = rescore_run(
        tmp_path / "old", tmp_path / "new", model=model, instances=instances()[:1],
        causal_sites=("embed", "edges"),
    )  # fmt: skip
    fresh = run_eval(
        tiny_bridge, instances()[:1], methods=["occlusion"], settings=done.settings,
        out=tmp_path / "fresh", model=model, progress=False,
    )  # fmt: skip
    again = {r["key"]: r for r in fresh}
    assert len(done.rows) == len(fresh) == 4  # 2 targets × (occlusion, random)
    for row in done.rows:
        assert row["metrics"] == again[row["key"]]["metrics"]
        assert "patch_corr@edges" in row["metrics"]
    with pytest.raises(ValueError, match="corruption"):
        rescore_run(
            tmp_path / "old", tmp_path / "other", model=model, instances=instances()[:1],
            corruption="zero",
        )  # fmt: skip
