"""How components combine (HETA §4), checked against hand-computed values."""

import pytest
import torch

from heta_lens.scoring import combine, gate_term, normalize

GATE = torch.tensor([0.6, 0.1, 0.3], dtype=torch.float64)


def test_sink_excluded_and_renormalised():
    expected = torch.tensor([0.0, 0.25, 0.75], dtype=torch.float64)
    torch.testing.assert_close(gate_term(GATE, sink="exclude"), expected)
    assert gate_term(GATE, sink="keep") is GATE
    one = torch.tensor([1.0], dtype=torch.float64)
    assert gate_term(one, sink="exclude").tolist() == [1.0]  # nothing to exclude
    only_sink = torch.tensor([1.0, 0.0], dtype=torch.float64)
    assert gate_term(only_sink, sink="exclude").tolist() == [0.0, 0.0]  # no mass left: zeros


@pytest.mark.parametrize(
    ("how", "expected"),
    [("sum", [0.25, 0.75, 0.0]), ("max", [1 / 3, 1.0, 0.0]), ("none", [1.0, 3.0, 0.0])],
)
def test_normalize(how, expected):
    values = torch.tensor([1.0, 3.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(normalize(values, how), torch.tensor(expected).double())
    zeros = torch.zeros(3, dtype=torch.float64)
    assert normalize(zeros, how).tolist() == [0.0, 0.0, 0.0]


def test_combine_is_gate_times_weighted_sum():
    s = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)
    i = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    got = combine(GATE, s, i, beta=0.5, gamma=0.5)
    torch.testing.assert_close(got, GATE * (0.5 * s + 0.5 * i))
    torch.testing.assert_close(combine(GATE, s, None, beta=2.0, gamma=9.0), GATE * 2.0 * s)
    torch.testing.assert_close(combine(GATE, None, i, beta=9.0, gamma=3.0), GATE * 3.0 * i)
    both_off = combine(GATE, None, None, beta=0.5, gamma=0.5)
    assert torch.equal(both_off, GATE) and both_off is not GATE
