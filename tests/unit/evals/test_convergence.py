"""ReAGent stopped at its step limit: labelled in every table, left out of automatic claims."""

from pathlib import Path

from heta_lens.evals import read_run
from heta_lens.evals.compare import compare_methods, comparison_table, paired_section
from heta_lens.evals.convergence import STEP_LIMITED, labelled, unconverged
from heta_lens.evals.datasets import EvalInstance
from heta_lens.evals.decoding import invariance_table
from heta_lens.evals.metrics import Interval
from heta_lens.evals.reports import rephrasing_table
from heta_lens.evals.summary import csv_table, markdown_table, summarize
from heta_lens.methods.reagent import ReagentConfig

RUNS = Path(__file__).resolve().parents[3] / "evals" / "runs"


def row(method: str, uid: str, soft_nc: float, diagnostics: dict | None = None) -> dict:
    out = {
        "key": f"{uid}|5|{method}",
        "uid": uid,
        "target": 5,
        "method": method,
        "metrics": {"soft_nc": soft_nc},
        "seconds": 1.0,
    }
    return out | ({"diagnostics": diagnostics} if diagnostics is not None else {})


STALLED = {"steps": 100, "probes_stopped": 3, "n_probes": 8}
DONE = {"steps": 12, "probes_stopped": 8, "n_probes": 8}
ROWS = [
    *(row("heta", u, 4.0) for u in ("u1", "u2", "u3")),
    *(row("occlusion", u, 2.0 + i) for i, u in enumerate(("u1", "u2", "u3"))),
    row("reagent", "u1", 9.0, STALLED),
    row("reagent", "u2", 9.0, DONE),
    row("reagent", "u3", 9.0, STALLED),
    *(row("random", u, 1.0) for u in ("u1", "u2", "u3")),
]
LABEL = "reagent (unconverged at 100 steps: 2/3 targets)"


def test_rows_that_hit_the_limit_with_probes_still_running_are_unconverged():
    found = unconverged(ROWS)
    assert list(found) == ["reagent"]
    assert (found["reagent"].steps, found["reagent"].rows, found["reagent"].recorded) == (100, 2, 3)
    assert labelled("reagent", found) == LABEL
    assert labelled("heta", found) == "heta"


def test_a_method_whose_probes_all_stopped_is_not_labelled():
    converged = [r for r in ROWS if r.get("diagnostics") != STALLED]
    assert unconverged(converged) == {}
    assert "unconverged" not in markdown_table(summarize(converged))


def test_rows_without_diagnostics_count_at_the_registered_step_limit():
    """The LongRA run's ReAGent rows predate the diagnostics: labelled, as not recorded."""
    assert STEP_LIMITED["reagent"] == ReagentConfig().max_steps == 100
    old = [row("reagent", "u1", 9.0), row("reagent", "u2", 9.0), row("heta", "u1", 1.0)]
    (found,) = unconverged(old).values()
    assert found.label == "unconverged at 100 steps: not recorded for 2 targets"
    mixed = unconverged([*old, row("reagent", "u3", 9.0, {**STALLED, "steps": 50})])
    assert mixed["reagent"].label == (
        "unconverged at 100 steps: 1/1 targets, not recorded for 2 targets"
    )


def test_summary_table_and_csv_label_reagent_only():
    text = markdown_table(summarize(ROWS))
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert sum(LABEL in line for line in lines) == 1
    assert any(line.startswith("| occlusion |") for line in lines)
    assert "reagent: on the targets counted, the step limit came before" in text
    csv = csv_table(summarize(ROWS))
    assert "reagent,unconverged,unconverged at 100 steps: 2/3 targets,,,3" in csv.splitlines()
    assert "occlusion,unconverged" not in csv


def test_default_paired_comparisons_leave_reagent_out():
    # reagent has the highest Soft-NC (9 vs heta's 4): an automatic comparison would be a loss
    found = compare_methods(ROWS, reference="heta", metrics=["soft_nc"])
    assert [c.other for c in found] == ["occlusion"]
    section = paired_section(ROWS, reference="heta")
    table_lines = [line for line in section.splitlines() if line.startswith("| ")]
    assert not any("reagent" in line for line in table_lines)
    assert f"Not compared: {LABEL}." in section


def test_reagent_compared_by_name_is_labelled():
    found = compare_methods(ROWS, reference="heta", others=["reagent"], metrics=["soft_nc"])
    assert [c.other for c in found] == ["reagent"]
    assert f"| {LABEL} |" in comparison_table(found, ROWS)
    assert "| reagent |" in comparison_table(found)  # without the rows nothing is known


def test_invariance_table_labels_reagent():
    def inst(uid, configs=None):
        meta = {"configs": configs} if configs else {}
        return EvalInstance(
            uid=uid, dataset="d", text="", tokens=(1, 2, 3), targets=(2,), meta=meta
        )

    instances = [inst("p0"), inst("p0/a", ["g1"])]
    rows = [
        {"method": m, "uid": u, "metrics": {"soft_nc": 1.0}, "diagnostics": d}
        for m, d in (("reagent", STALLED), ("heta", {}))
        for u in ("p0", "p0/a")
    ]
    table = invariance_table(rows, instances, metrics=("soft_nc",))
    assert "| reagent (unconverged at 100 steps: 2/2 targets) | soft_nc | 1.0000 |" in table
    assert "| heta | soft_nc |" in table


def test_rephrasing_table_labels_reagent(monkeypatch):
    from heta_lens.evals import reports

    interval = Interval(mean=0.5, low=0.1, high=0.9, n=2)
    monkeypatch.setattr(
        reports, "rephrasing_by_method", lambda *_a, **_k: {"reagent": interval, "heta": interval}
    )
    rows = [row("reagent", "p/active", 1.0, STALLED), row("heta", "p/active", 1.0)]
    table = rephrasing_table(rows, [])
    assert "| reagent (unconverged at 100 steps: 1/1 targets) | 2 | 0.500 [0.100, 0.900] |" in table
    assert "| heta | 2 |" in table


def test_stored_tellmewhy_run_labels_reagent_from_its_rows():
    report = read_run(RUNS / "tellmewhy-smollm2-135m")
    (line,) = [x for x in report.text.splitlines() if x.startswith("| reagent")]
    assert line.startswith("| reagent (unconverged at 100 steps: ")
    assert "| heta |" in report.text
    assert all(c.other != "reagent" for c in compare_methods(report.rows, reference="heta"))
