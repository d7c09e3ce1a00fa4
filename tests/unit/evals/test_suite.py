"""``run_suite`` and ``heta-lens eval``: flags from ``SuiteSettings``, the same rows and
summary from both, filtering of a run directory's rows, stored runs read back."""

import argparse
import json
from pathlib import Path

import pytest

from heta_lens.cli import main
from heta_lens.cli_eval import add_eval_parser
from heta_lens.evals import EvalSettings, Report, SuiteSettings, read_run, run_suite
from heta_lens.evals.store import read_rows
from heta_lens.evals.summary import summarize
from heta_lens.flags import flag_fields, from_flags

pytestmark = pytest.mark.bridge

HISTORIC_DEFAULTS = {  # `heta-lens eval`'s defaults before its flags came from SuiteSettings
    "on": None,
    "model": "smollm2-135m",
    "backend": "bridge",
    "device": "cpu",  # added with issue 23 (devices and dtypes)
    "dtype": "float32",
    # issue 25 item 6: None = the suite's methods (SUITE_METHODS), else DEFAULT_METHODS, the
    # old default (checked in test_parser_defaults_are_the_settings_defaults)
    "methods": None,
    "limit": None,
    "out": None,
    "data_dir": None,
    "data": None,
    "curated_filter": "top10",  # issue 25 item 3; was --top-k 10 (not recorded in run.json)
    "n_draws": 4,
    "seed": 0,
    "metrics": None,
    "heta_preset": "fast",
    "n_probes": None,
    "mask": "zero",
    "beta_sweep": False,
    "corruption": "noise",
    "causal_draws": 4,
    "causal_sites": ("embed",),  # issue 25 item 6 (--causal-site; stored runs read as embed)
    "sensitivity_delta": 0.05,
    "sensitivity_draws": 3,
    "protocol": "standard",  # added with issue 25 (stored runs without it read as legacy)
    "controls": (),  # issue 25
    "matched_fraction": 0.1,  # issue 25
    "grid": "full",
    "plots": True,  # --no-plots
    "workers": 1,
    "threads": None,
    "runner": "local",  # added with issue 26 (Ray)
    "ray_address": None,
    "ray_cpus": 1,
}


def _eval_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers(dest="command"))
    return parser


def _option_strings() -> set[str]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    add_eval_parser(sub)
    return {option for action in sub.choices["eval"]._actions for option in action.option_strings}


def _comparable(rows):
    return sorted(
        ({k: v for k, v in r.items() if k != "seconds"} for r in rows), key=lambda r: r["key"]
    )


def _without_seconds(text: str) -> list[str]:
    """The lines of a summary with each table line's last cell (s/target) cut off."""
    return [line.rsplit("|", 2)[0] if line.startswith("|") else line for line in text.split("\n")]


def test_parser_defaults_are_the_settings_defaults():
    parser = _eval_parser()
    parsed = parser.parse_args(["eval", "curated"])
    assert from_flags(SuiteSettings, parsed) == SuiteSettings(dataset="curated")
    defaults = {f.name: f.default for f, spec in flag_fields(SuiteSettings) if not spec.positional}
    assert defaults == HISTORIC_DEFAULTS
    assert {k: getattr(parsed, k) for k in defaults} == HISTORIC_DEFAULTS
    renamed = {"plots": "--no-plots", "causal_sites": "--causal-site"}
    flags = {renamed.get(k, "--" + k.replace("_", "-")) for k in HISTORIC_DEFAULTS}
    assert _option_strings() == {"-h", "--help", *flags}
    assert SuiteSettings(dataset="curated").method_names == (
        "heta",
        "integrated_gradients",
        "attention_rollout",
        "occlusion",
    )
    # the settings that fix the numbers share EvalSettings' own defaults
    assert SuiteSettings(dataset="curated").eval_settings() == EvalSettings(
        dataset="curated", model="smollm2-135m", heta_preset="fast"
    )


def test_flags_parse_into_typed_settings():
    argv = [
        "eval", "causal", "--on", "longra", "--methods", "heta, occlusion,", "--metrics",
        "causal,soft", "--no-plots", "--beta-sweep", "--data-dir", "d", "--limit", "3",
        "--sensitivity-delta", "0.1", "--n-probes", "2", "--heta-preset", "row",
    ]  # fmt: skip
    settings = from_flags(SuiteSettings, _eval_parser().parse_args(argv))
    assert settings == SuiteSettings(
        dataset="causal", on="longra", methods=("heta", "occlusion"), metrics=("causal", "soft"),
        plots=False, beta_sweep=True, data_dir=Path("d"), limit=3, sensitivity_delta=0.1,
        n_probes=2, heta_preset="row",
    )  # fmt: skip
    assert (settings.suite, settings.dataset_name, settings.name) == (
        "causal",
        "longra",
        "causal-longra",
    )
    assert settings.out_dir == Path("eval-results/causal-longra-smollm2-135m")
    numbers = settings.eval_settings()
    assert numbers.metrics == ("causal", "soft") and numbers.heta_overrides == (("n_probes", 2),)
    assert SuiteSettings(dataset="robustness").metric_groups == ("sensitivity",)
    assert SuiteSettings(dataset="decoding").dataset_name == "tellmewhy"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dataset": "curated", "on": "longra"}, "--on selects the dataset of a suite"),
        ({"dataset": "decoding", "on": "curated"}, "decoding suite runs on a sequence dataset"),
        ({"dataset": "squad"}, "unknown dataset or suite 'squad'"),
    ],
)
def test_bad_suite_settings_are_refused(kwargs, message, tmp_path, capsys):
    with pytest.raises(ValueError, match=message):
        SuiteSettings(**kwargs)
    flags = [f"--{k}={v}" for k, v in kwargs.items() if k != "dataset"]
    if kwargs["dataset"] != "squad":  # argparse's choices refuse that one
        out = tmp_path / "x"
        assert main(["eval", kwargs["dataset"], *flags, "--out", str(out)]) == 2
        assert message in capsys.readouterr().err
        assert not out.exists()


@pytest.fixture(scope="module")
def curated_file(tmp_path_factory):
    """Three rows in the curated schema that fit the tiny model (n_ctx 16)."""
    rows = [
        {
            "id": f"c{k}",
            "narrative": f"w5 w{3 + k}",
            "support": f"w7 w8 w{4 + k}",
            "question": f"w{6 - k} w8",
            "answer": "w8",
            "support_spans": [[3, 5]],
        }
        for k in range(3)
    ]
    path = tmp_path_factory.mktemp("curated") / "c.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HETA_LENS_CACHE", str(tmp_path / "cache"))


def _settings(model_dir, curated_file, out, **over) -> SuiteSettings:
    values = {
        "dataset": "curated", "model": str(model_dir), "data": curated_file,
        "curated_filter": "top50",
        "methods": ("heta", "occlusion"), "n_probes": 1, "n_draws": 1,
        "metrics": ("soft", "aopc", "alignment"), "out": out,
    }  # fmt: skip
    return SuiteSettings(**{**values, **over})


def test_cli_and_run_suite_give_the_same_rows_and_summary(
    model_dir, curated_file, tmp_path, capsys
):
    argv = [
        "eval", "curated", "--model", str(model_dir), "--data", str(curated_file),
        "--curated-filter", "top50", "--methods", "heta,occlusion", "--n-probes", "1",
        "--n-draws", "1", "--metrics", "soft,aopc,alignment", "--out", str(tmp_path / "cli"),
    ]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr()
    report = run_suite(_settings(model_dir, curated_file, tmp_path / "lib"), progress=False)
    cli_rows = read_rows(tmp_path / "cli")
    assert len(cli_rows) == 3 * 3  # 3 instances × (2 methods + random)
    assert _comparable(report.rows) == _comparable(cli_rows)
    assert report.n_instances == len(report.instances) == 3
    assert report.methods == ("heta", "occlusion")
    assert [repr((s.method, s.values)) for s in report.summaries] == [
        repr((s.method, s.values)) for s in summarize(cli_rows)
    ]
    cli_md = (tmp_path / "cli" / "summary.md").read_text()
    assert _without_seconds(printed.out) == _without_seconds(cli_md + "\n")
    assert _without_seconds(report.text) == _without_seconds(cli_md)
    assert report.header.startswith("dataset curated, model ") and "| DSA |" in report.body
    assert "3 instances (answer filter top50)" in report.header
    assert report.settings.curated_filter == "top50"
    # the target-side metrics of the same forward: every row has them (the target-side Soft
    # values are NaN wherever the tiny random model's target is at least as likely on the
    # empty input as in context, so their column may be missing; the AOPC areas are defined)
    assert all({"soft_nc_logp", "aopc_deletion_logp"} <= set(r["metrics"]) for r in cli_rows)
    assert "| AOPC deletion (log p(t)) |" in report.body
    assert "| heta | 3 | " in report.body and "| occlusion | 3 | " in report.body
    lib = tmp_path / "lib"
    assert report.paths == (lib / "summary.md", lib / "summary.csv", lib / "deletion.png")
    assert (lib / "summary.md").read_text() == report.text
    assert f"wrote {lib / 'deletion.png'}" not in printed.err
    assert f"wrote {tmp_path / 'cli' / 'deletion.png'}" in printed.err
    assert json.loads((lib / "run.json").read_text())["settings"] == json.loads(
        json.dumps(report.settings.to_dict())
    )


def test_a_rerun_resumes_and_reports_only_what_it_asked_for(model_dir, curated_file, tmp_path):
    out = tmp_path / "run"
    full = run_suite(_settings(model_dir, curated_file, out, plots=False), progress=False)
    lines = (out / "rows.jsonl").read_text().count("\n")
    logged: list[str] = []
    one = run_suite(
        _settings(model_dir, curated_file, out, plots=False, limit=1, methods=("occlusion",)),
        progress=False,
        log=logged.append,
    )
    assert (out / "rows.jsonl").read_text().count("\n") == lines  # nothing recomputed
    assert logged == [f"curated: 1 instances, 1 targets -> {out}"]
    assert {(r["uid"], r["method"]) for r in one.rows} == {("c0", "occlusion"), ("c0", "random")}
    assert _comparable(one.rows) == _comparable(
        [r for r in full.rows if r["uid"] == "c0" and r["method"] != "heta"]
    )
    assert "| heta |" not in one.body and one.paths == (out / "summary.md", out / "summary.csv")
    with pytest.raises(ValueError, match="different settings"):
        run_suite(_settings(model_dir, curated_file, out, n_draws=2), progress=False)


def test_read_run_summarises_the_complete_instances(model_dir, curated_file, tmp_path):
    out = tmp_path / "run"
    report = run_suite(_settings(model_dir, curated_file, out, plots=False), progress=False)
    with (out / "rows.jsonl").open("a") as handle:  # a run stopped inside instance "c9"
        handle.write(json.dumps({**report.rows[0], "uid": "c9", "key": "c9|12|heta"}) + "\n")
    stored = read_run(out)
    assert isinstance(stored, Report) and stored.settings == report.settings
    assert _comparable(stored.rows) == _comparable(report.rows)
    assert stored.text == "3 complete instances\n\n" + stored.body
    assert _without_seconds(stored.body) == _without_seconds(report.body.split("\nPaired")[0])
    everything = read_run(out, complete_only=False)
    assert everything.n_instances == 4 and everything.header == "4 instances\n\n"
    assert stored.instances == () and stored.paths == () and stored.methods == report.methods
