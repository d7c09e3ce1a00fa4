"""DSA (fine / coarse) and top-k F1 on hand-computed examples."""

import pytest
import torch

from heta_lens.evals.metrics import dsa, topk_f1

# context layout: narrative 0-3 | sep 4 | SciQ support 5-9 (annotated S = {6, 8}) | question 10-11
NARRATIVE = torch.tensor([True] * 4 + [False] * 8)
SCIQ = torch.tensor([False] * 5 + [True] * 5 + [False] * 2)
S = torch.tensor([6, 8])


def scores_with(mass: dict[int, float]) -> torch.Tensor:
    out = torch.zeros(12, dtype=torch.float64)
    for i, v in mass.items():
        out[i] = v
    return out


def test_all_mass_on_support_is_one_and_on_narrative_is_minus_one():
    assert dsa(scores_with({6: 2.0, 8: 5.0}), support=S, narrative=NARRATIVE) == 1.0
    assert dsa(scores_with({0: 1.0, 3: 1.0}), support=S, narrative=NARRATIVE) == -1.0


def test_hand_example_with_negative_scores_clamped():
    # positive mass: 6 → 3, 1 → 1, 11 → 4 (total 8); the −5 on position 7 is clamped to 0
    s = scores_with({6: 3.0, 1: 1.0, 11: 4.0, 7: -5.0})
    assert dsa(s, support=S, narrative=NARRATIVE) == pytest.approx(3 / 8 - 1 / 8)
    assert dsa(s, support=SCIQ, narrative=NARRATIVE) == pytest.approx(3 / 8 - 1 / 8)
    s[9] = 8.0  # support segment but not in S: counts for coarse only (total 16)
    assert dsa(s, support=S, narrative=NARRATIVE) == pytest.approx(3 / 16 - 1 / 16)
    assert dsa(s, support=SCIQ, narrative=NARRATIVE) == pytest.approx(11 / 16 - 1 / 16)


def test_masks_and_index_tensors_agree_and_no_positive_mass_is_uniform():
    s = scores_with({0: 1.0, 6: 2.0, 9: 1.0})
    by_index = dsa(s, support=S, narrative=torch.arange(4))
    by_mask = dsa(s, support=torch.isin(torch.arange(12), S), narrative=NARRATIVE)
    assert by_index == by_mask == pytest.approx(2 / 4 - 1 / 4)
    # all ≤ 0: uniform a = 1/12 → |S|/12 − |narrative|/12
    assert dsa(-s, support=S, narrative=NARRATIVE) == pytest.approx(2 / 12 - 4 / 12)


def test_dsa_range_on_random_scores():
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        s = torch.randn(12, generator=gen, dtype=torch.float64)
        assert -1.0 <= dsa(s, support=S, narrative=NARRATIVE) <= 1.0
        assert -1.0 <= dsa(s, support=SCIQ, narrative=NARRATIVE) <= 1.0


def test_dsa_rejects_overlap_and_out_of_range():
    with pytest.raises(ValueError, match="overlap"):
        dsa(scores_with({0: 1.0}), support=torch.tensor([3, 6]), narrative=NARRATIVE)
    with pytest.raises(ValueError, match="indices"):
        dsa(scores_with({0: 1.0}), support=torch.tensor([12]), narrative=NARRATIVE)


def test_topk_f1_hand_examples():
    assert topk_f1(scores_with({6: 1.0, 8: 0.5}), support=S) == 1.0
    assert topk_f1(scores_with({6: 1.0, 0: 0.5}), support=S) == 0.5
    assert topk_f1(scores_with({0: 1.0, 1: 0.5}), support=S) == 0.0
    # k = |S| = 3; top-3 = {2, 5, 9} vs S = {2, 7, 10}: one hit → P = R = F1 = 1/3
    three = torch.tensor([2, 7, 10])
    assert topk_f1(scores_with({2: 3.0, 5: 2.0, 9: 1.0}), support=three) == pytest.approx(1 / 3)


def test_topk_f1_ties_go_to_the_earlier_position():
    # all zero: the top-2 are positions 0 and 1
    assert topk_f1(torch.zeros(12, dtype=torch.float64), support=torch.tensor([0, 1])) == 1.0
    assert topk_f1(torch.zeros(12, dtype=torch.float64), support=S) == 0.0
    # 6 and 7 tie behind 8: k = 2 takes 8, then 6 (earlier) → both in S
    assert topk_f1(scores_with({8: 2.0, 6: 1.0, 7: 1.0}), support=S) == 1.0
    assert topk_f1(scores_with({8: 2.0, 6: 1.0, 5: 1.0}), support=S) == 0.5


def test_topk_f1_empty_support_rejected():
    with pytest.raises(ValueError, match="empty"):
        topk_f1(scores_with({0: 1.0}), support=torch.zeros(12, dtype=torch.bool))
