"""Win / tie / loss verdicts from paired intervals, on rows with known answers."""

import math

import pytest

from heta_lens.evals.compare import Comparison, compare_methods
from heta_lens.evals.metrics import Interval
from heta_lens.evals.verdicts import verdict, verdict_table


def row(method: str, uid: str, **metrics: float) -> dict:
    return {
        "key": f"{uid}|5|{method}",
        "uid": uid,
        "target": 5,
        "method": method,
        "metrics": metrics,
        "seconds": 1.0,
    }


def comparison(metric: str, low: float, high: float) -> Comparison:
    iv = Interval(mean=(low + high) / 2, low=low, high=high, n=10)
    return Comparison(
        reference="a", other="b", metric=metric, statistic="difference", interval=iv, n_higher=5
    )


@pytest.mark.parametrize(
    ("metric", "low", "high", "expected"),
    [
        ("hard_nc", 0.1, 0.4, "win"),
        ("hard_nc", -0.4, -0.1, "loss"),
        ("hard_nc", -0.1, 0.4, "tie"),
        ("hard_nc", 0.0, 0.4, "tie"),  # an interval touching 0 does not exclude it
        ("soft_nc@rank", math.nan, math.nan, "tie"),
        ("sensitivity", 0.1, 0.4, "loss"),  # lower is better: ref higher = worse
        ("misattribution@rank", -0.4, -0.1, "win"),
    ],
)
def test_verdict_reads_the_interval(metric, low, high, expected):
    assert verdict(comparison(metric, low, high)) == expected


# A beats B by exactly 1 on every instance (a point interval above 0); A and C differ by ±1
# alternately (mean 0, interval around 0); A is 1 below D everywhere.
ROWS = [
    r
    for i in range(8)
    for r in (
        row("A", f"u{i}", hard_nc=2.0),
        row("B", f"u{i}", hard_nc=1.0),
        row("C", f"u{i}", hard_nc=2.0 + (1.0 if i % 2 else -1.0)),
        row("D", f"u{i}", hard_nc=3.0),
    )
]


def test_table_marks_and_counts_each_pair():
    table = verdict_table(ROWS, reference="A", metrics=["hard_nc"])
    lines = table.strip().splitlines()
    assert lines[0].startswith("| A vs | hard-top-k NC")
    body = {line.split(" | ")[0].strip("| "): line for line in lines[2:]}
    assert "W +1.000" in body["B"] and "1 / 0 / 0" in body["B"]
    assert "· +0.000" in body["C"] and "0 / 1 / 0" in body["C"]
    assert "L -1.000" in body["D"] and "0 / 0 / 1" in body["D"]
    # the verdicts are the compare module's intervals, read as above
    found = {c.other: verdict(c) for c in compare_methods(ROWS, reference="A", metrics=["hard_nc"])}
    assert found == {"B": "win", "C": "tie", "D": "loss"}


def test_counted_metrics_bold_and_labels():
    # A beats B on hard_nc by 1 everywhere and loses soft_nc by 1 everywhere: shown, not counted
    rows = [
        r
        for i in range(8)
        for r in (
            row("A", f"u{i}", hard_nc=2.0, soft_nc=1.0),
            row("B", f"u{i}", hard_nc=1.0, soft_nc=2.0),
        )
    ]
    table = verdict_table(
        rows,
        reference="A",
        metrics=["hard_nc", "soft_nc"],
        counted=["hard_nc"],
        bold=True,
        labels={"A": "Alpha", "B": "Beta"},
    )
    header, _, line = table.strip().splitlines()
    assert header.startswith("| Alpha vs |")
    assert line.startswith("| Beta | **W** +1.000 | **L** -0.693 |")  # ln(1/2)
    assert line.endswith("| 1 / 0 / 0 |")
    with pytest.raises(ValueError, match="not among the table's metrics"):
        verdict_table(rows, reference="A", metrics=["hard_nc"], counted=["soft_nc"])


def test_headline_script_section(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    from heta_lens.evals.settings import EvalSettings

    script = Path(__file__).resolve().parents[3] / "scripts" / "headline.py"
    spec = importlib.util.spec_from_file_location("headline", script)
    assert spec is not None and spec.loader is not None
    headline = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(headline)
    settings = EvalSettings(dataset="toy", model="m", protocol="standard")
    (tmp_path / "run.json").write_text(json.dumps({"settings": settings.to_dict()}))
    rows = [
        r
        for i in range(8)
        for r in (
            row("heta", f"u{i}", hard_nc=2.0, soft_nc=1.0, soft_ns=0.0),
            row("occlusion", f"u{i}", hard_nc=1.0, soft_nc=2.0, soft_ns=0.0),
            row("random", f"u{i}", hard_nc=0.0, soft_nc=1.0, soft_ns=0.0),
        )
    ]
    rows.append(row("heta", "incomplete", hard_nc=5.0))  # no other method yet: not counted
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = headline.section(tmp_path, reference="heta", drop=frozenset({"soft_ns"}))
    assert text.startswith("### toy, m (8 instances, 8 targets; protocol `standard`)")
    assert "| occlusion | **W** +1.000 | **L** -0.693 | 1 / 0 / 0 |" in text
    assert "random" not in text.split("\n\n")[1]
    assert "Left out (cannot rank methods here): soft_ns." in text
