"""Paired method comparisons on hand-computable rows, and against the summary's ln-ratios."""

import math

import pytest

from heta_lens.evals.compare import compare_methods, comparison_table, paired_section
from heta_lens.evals.metrics import bootstrap_ci
from heta_lens.evals.summary import summarize


def row(method: str, uid: str, target: int, **metrics: float) -> dict:
    return {
        "key": f"{uid}|{target}|{method}",
        "uid": uid,
        "target": target,
        "method": method,
        "metrics": metrics,
        "seconds": 1.0,
    }


# Instance means — soft_nc: A (2, 4), B (1, 2), random (0.5, 0.5); hard_nc: A (3, 1), B (1, 2).
ROWS = [
    row("A", "u1", 5, soft_nc=1.0, hard_nc=2.0),
    row("A", "u1", 7, soft_nc=3.0, hard_nc=4.0),
    row("A", "u2", 5, soft_nc=4.0, hard_nc=1.0),
    row("B", "u1", 5, soft_nc=1.0, hard_nc=1.0),
    row("B", "u1", 7, soft_nc=1.0, hard_nc=1.0),
    row("B", "u2", 5, soft_nc=2.0, hard_nc=2.0),
    row("random", "u1", 5, soft_nc=0.5, hard_nc=0.0),
    row("random", "u1", 7, soft_nc=0.5, hard_nc=0.0),
    row("random", "u2", 5, soft_nc=0.5, hard_nc=0.0),
]


def test_log_ratio_of_instance_means_by_hand():
    (c,) = compare_methods(ROWS, reference="A", others=["B"], metrics=["soft_nc"])
    # ln(mean(2, 4) / mean(1, 2)) = ln 2; every resample has A = 2·B, so the interval is a point
    assert (c.reference, c.other, c.metric, c.statistic) == ("A", "B", "soft_nc", "log_ratio")
    assert c.interval.mean == pytest.approx(math.log(2.0), rel=1e-12)
    assert c.interval.low == pytest.approx(math.log(2.0), rel=1e-12)
    assert c.interval.high == pytest.approx(math.log(2.0), rel=1e-12)
    assert (c.interval.n, c.n_higher) == (2, 2)


def test_difference_of_instance_means_by_hand():
    (c,) = compare_methods(ROWS, reference="A", others=["B"], metrics=["hard_nc"])
    # differences 3 − 1 = 2 and 1 − 2 = −1: mean 0.5, A higher on one instance
    assert c.statistic == "difference"
    assert c.interval.mean == pytest.approx(0.5, rel=1e-12)
    assert c.n_higher == 1
    assert c.interval == bootstrap_ci([2.0, -1.0])
    assert -1.0 <= c.interval.low <= c.interval.high <= 2.0


def test_log_ratio_is_the_difference_of_the_summary_ln_ratios():
    """The random baseline's mean cancels: ln(A/B) = ln(A/random) − ln(B/random)."""
    summaries = {s.method: s for s in summarize(ROWS)}
    (c,) = compare_methods(ROWS, reference="A", others=["B"], metrics=["soft_nc"])
    expected = summaries["A"].values["soft_nc"].mean - summaries["B"].values["soft_nc"].mean
    assert c.interval.mean == pytest.approx(expected, rel=1e-12)


def test_swapping_reference_negates_the_statistic():
    ab = compare_methods(ROWS, reference="A", others=["B"], metrics=["soft_nc", "hard_nc"])
    ba = compare_methods(ROWS, reference="B", others=["A"], metrics=["soft_nc", "hard_nc"])
    for x, y in zip(ab, ba, strict=True):
        assert x.interval.mean == pytest.approx(-y.interval.mean, abs=1e-12)
        assert x.interval.low == pytest.approx(-y.interval.high, abs=1e-12)
        assert x.interval.high == pytest.approx(-y.interval.low, abs=1e-12)
    # soft_nc: A higher on both; hard_nc: one each way
    assert [c.n_higher for c in ab] == [2, 1]
    assert [c.n_higher for c in ba] == [0, 1]


def test_default_others_skip_reference_and_random_in_row_order():
    rows = [*ROWS, row("C", "u1", 5, soft_nc=2.0), row("C", "u1", 7, soft_nc=2.0)]
    got = compare_methods(rows, reference="A")
    assert [(c.other, c.metric) for c in got] == [("B", "soft_nc"), ("C", "soft_nc")]
    # C only has u1: the pair uses the common instance alone (A's u1 mean 2 vs 2)
    assert got[1].interval.n == 1
    assert got[1].interval.mean == pytest.approx(0.0, abs=1e-12)
    assert got[1].n_higher == 0


def test_instances_without_a_value_are_left_out():
    rows = [r for r in ROWS if not (r["method"] == "B" and r["uid"] == "u2")]
    rows.append(row("B", "u2", 5, soft_nc=math.nan))
    (c,) = compare_methods(rows, reference="A", others=["B"], metrics=["soft_nc"])
    assert c.interval.n == 1
    assert c.interval.mean == pytest.approx(math.log(2.0), rel=1e-12)  # u1: 2 vs 1
    # a metric one side never has gives no comparison at all
    assert compare_methods(rows, reference="A", others=["B"], metrics=["soft_ns"]) == []


def test_table_lists_each_pair_with_its_counts():
    text = comparison_table(
        compare_methods(ROWS, reference="A", others=["B"], metrics=["soft_nc", "hard_nc"])
    )
    lines = text.strip().splitlines()
    assert lines[0].startswith("| A vs | Soft-NC (ln-ratio) | higher | hard-top-k NC (KL)")
    assert lines[2] == "| B | 0.693 [0.693, 0.693] | 2 / 2 | 0.500 [-1.000, 2.000] | 1 / 2 |"
    assert comparison_table([]) == ""


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"reference": "Z"}, "no rows for method 'Z'"),
        ({"reference": "A", "others": ["B", "Y"]}, "no rows for method 'Y'"),
        ({"reference": "A", "metrics": ["soft_xx"]}, "unknown metric 'soft_xx'"),
    ],
)
def test_bad_names_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        compare_methods(ROWS, **kwargs)


def test_negative_soft_values_are_rejected():
    rows = [*ROWS[:2], row("A", "u2", 5, soft_nc=-1.0), *ROWS[3:]]
    with pytest.raises(ValueError, match="negative"):
        compare_methods(rows, reference="A", others=["B"], metrics=["soft_nc"])


def test_paired_section_under_the_eval_summary():
    rows = [{**r, "method": "heta" if r["method"] == "A" else r["method"]} for r in ROWS]
    text = paired_section(rows)
    assert text.startswith("\nPaired with heta: ln(mean heta / mean other)")
    assert "| heta vs | Soft-NC (ln-ratio) | higher |" in text
    assert "| B | 0.693 [0.693, 0.693] | 2 / 2 |" in text
    assert "hard-top-k" not in text and "| random |" not in text  # Soft metrics, no random
    assert paired_section(ROWS) == ""  # no method called heta
    alone = [r for r in rows if r["method"] != "B"]
    assert paired_section(alone) == ""  # heta and the random baseline only
    no_soft = [{**r, "metrics": {"hard_nc": 1.0}} for r in rows]
    assert paired_section(no_soft) == ""
