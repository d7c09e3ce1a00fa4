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
