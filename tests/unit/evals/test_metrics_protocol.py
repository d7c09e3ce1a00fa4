"""The ``standard`` protocol in the metrics: BOS/sink never masked, DSA over the paragraph.

Row tests inspect the embedding copies the metrics forward (position 0 equal to the input in
every copy); the one-position model (its prediction reads position ``j`` only) gives known
answers: with j = 0 and position 0 protected no perturbation can move the prediction.
"""

import math

import pytest
import torch

from heta_lens.evals.metrics import dsa, perturbation_metrics, topk_f1
from heta_lens.evals.metrics._common import count_for_fraction, top_k_masks
from heta_lens.evals.metrics.curves import aopc_curves, aopc_rows
from heta_lens.evals.metrics.hard import hard_rows, hard_topk_kl
from heta_lens.evals.metrics.soft import normalize_free, soft_rows, soft_scores
from heta_lens.evals.protocol import get_protocol
from heta_lens.evals.row_metrics import alignment_values
from heta_lens.testing import tiny_bridge
from tests.unit.evals.test_metrics_soft import one_position_model
from tests.unit.evals.test_runner import instances

X = torch.arange(1.0, 25.0, dtype=torch.float64).reshape(6, 4)  # no zero entry: masks show
SCORES = torch.tensor([100.0, 1.0, 3.0, -2.0, 2.0, 0.5], dtype=torch.float64)


def test_normalize_free_excludes_position_zero():
    a = normalize_free(SCORES, protected=1)
    # clamped [1, 3, 0, 2, 0.5] / 6.5 on positions 1..5
    expected = torch.tensor([0.0, 1 / 6.5, 3 / 6.5, 0.0, 2 / 6.5, 0.5 / 6.5], dtype=torch.float64)
    torch.testing.assert_close(a, expected, rtol=0, atol=1e-16)
    with pytest.raises(ValueError, match="nothing to perturb"):
        normalize_free(torch.tensor([1.0]), protected=1)


def test_soft_rows_keep_row_zero_in_every_copy_and_mask_the_rest_as_the_recipe():
    n_draws = 3
    rows = soft_rows(
        X, SCORES, n_draws=n_draws, generator=torch.Generator().manual_seed(4), protected=1
    )
    assert rows.shape == (2 + 2 * n_draws, 6, 4)
    for copy in rows:  # q, p_0, every sufficiency and comprehensiveness copy
        torch.testing.assert_close(copy[0], X[0], rtol=0, atol=0)
    assert bool((rows[1, 1:] == 0).all())  # p_0: every other position zeroed
    # positions >= 1: the same u as soft_scores' docstring, compared with a = normalize_free
    u = torch.rand(
        (n_draws, 2, 6, 4), generator=torch.Generator().manual_seed(4), dtype=torch.float64
    )
    a = normalize_free(SCORES, protected=1)
    for k in range(n_draws):
        keep_s = u[k, 0, 1:] < a[1:, None]
        keep_c = u[k, 1, 1:] < (1 - a[1:])[:, None]
        torch.testing.assert_close(rows[2 + k, 1:], X[1:] * keep_s, rtol=0, atol=0)
        torch.testing.assert_close(rows[2 + n_draws + k, 1:], X[1:] * keep_c, rtol=0, atol=0)
    # legacy masks position 0 too: with all the mass there, it is kept for S and dropped for C
    legacy = soft_rows(X, SCORES, n_draws=n_draws, generator=torch.Generator().manual_seed(4))
    assert bool((legacy[1] == 0).all())
    assert bool((legacy[2 + n_draws :, 0] != X[0]).any())


def test_top_k_ranks_and_counts_unprotected_positions_only():
    counts = (1, 2)
    legacy = top_k_masks(SCORES, counts)
    assert legacy[0].nonzero().flatten().tolist() == [0]  # the sink wins under legacy
    standard = top_k_masks(SCORES, counts, protected=1)
    assert standard[0].nonzero().flatten().tolist() == [2]
    assert standard[1].nonzero().flatten().tolist() == [2, 4]
    repl = torch.zeros_like(X)
    hard = hard_rows(X, repl, SCORES, counts=counts, protected=1)
    aopc = aopc_rows(X, repl, SCORES, counts=counts, protected=1)
    for copy in (*hard, *aopc):
        torch.testing.assert_close(copy[0], X[0], rtol=0, atol=0)
    # hard: [orig, del top1, del top2, keep top1, keep top2]; "keep" keeps the sink as well
    kept = [(c != 0).all(-1).nonzero().flatten().tolist() for c in hard]
    assert kept == [[0, 1, 2, 3, 4, 5], [0, 1, 3, 4, 5], [0, 1, 3, 5], [0, 2], [0, 2, 4]]
    # aopc: [orig, empty (sink kept), del top1, del top2, ins top1, ins top2]
    kept = [(c != 0).all(-1).nonzero().flatten().tolist() for c in aopc]
    assert kept[1] == [0]
    assert kept[4:] == [[0, 2], [0, 2, 4]]


@pytest.mark.hooked
def test_bos_only_model_cannot_be_moved_when_the_sink_is_protected():
    """Prediction reads position 0 only: protected, every copy gives q exactly."""
    model = one_position_model(0)
    tokens = torch.tensor([1, 5, 7, 3, 9, 11, 4, 8])
    scores = torch.tensor([5.0, 1.0, 0.0, 2.0, 0.5, 0.1, 3.0], dtype=torch.float64)
    res = perturbation_metrics(
        model,
        tokens,
        target=7,
        scores=scores,
        n_draws=2,
        generator=torch.Generator().manual_seed(0),
        hard_fractions=(0.1, 0.5),
        aopc_fractions=(0.5, 1.0),
        protected=1,
    )
    assert res.soft is not None and res.hard is not None and res.aopc is not None
    assert res.soft.s0 == 1.0 and math.isnan(res.soft.soft_nc)  # 1 − S0 = 0: undefined
    assert res.hard.nc_per_fraction == (0.0, 0.0) and res.hard.ns_per_fraction == (0.0, 0.0)
    p = res.aopc.p_orig
    assert res.aopc.p_empty == p and set(res.aopc.p_deletion) == {p} == set(res.aopc.p_insertion)
    # legacy masks the sink: the same scores now move the prediction
    legacy = hard_topk_kl(model, tokens, target=7, scores=scores, fractions=(0.1,))
    assert legacy.nc > 1e-3


@pytest.mark.bridge
def test_protected_metrics_agree_with_their_single_functions_and_count_free_positions():
    model = tiny_bridge()
    tokens = torch.tensor([1, 5, 7, 3, 9, 11, 4, 8])
    scores = torch.tensor([5.0, 1.0, -0.5, 2.0, 0.5, 0.1, 3.0], dtype=torch.float64)
    joint = perturbation_metrics(
        model,
        tokens,
        target=7,
        scores=scores,
        n_draws=2,
        generator=torch.Generator().manual_seed(0),
        hard_fractions=(0.1, 0.3),
        aopc_fractions=(0.5, 1.0),
        protected=1,
    )
    soft = soft_scores(
        model, tokens, target=7, scores=scores, n_draws=2,
        generator=torch.Generator().manual_seed(0), protected=1,
    )  # fmt: skip
    hard = hard_topk_kl(model, tokens, target=7, scores=scores, fractions=(0.1, 0.3), protected=1)
    aopc = aopc_curves(model, tokens, target=7, scores=scores, fractions=(0.5, 1.0), protected=1)
    assert hard.k == tuple(count_for_fraction(f, 6) for f in (0.1, 0.3)) == (1, 2)
    assert aopc.k == (3, 6)
    assert joint.soft is not None and joint.hard is not None and joint.aopc is not None
    # float64 tiny model: batch round-off measured at 0 here; 1e-12 leaves room for BLAS paths
    assert joint.soft.soft_nc == pytest.approx(soft.soft_nc, abs=1e-12)
    assert joint.hard.nc == pytest.approx(hard.nc, abs=1e-12)
    assert joint.aopc.deletion_aopc == pytest.approx(aopc.deletion_aopc, abs=1e-12)


def test_dsa_over_the_paragraph_by_hand():
    # positions: 0 BOS, 1-2 narrative, 3-4 SciQ segment (S = {4}), 5-6 question
    scores = torch.tensor([5.0, 2.0, -1.0, 1.0, 3.0, 0.0, 4.0], dtype=torch.float64)
    narrative = torch.tensor([1, 2])
    sciq = torch.tensor([3, 4])
    paragraph = torch.tensor([1, 2, 3, 4])
    support = torch.tensor([4])
    # paragraph mass: clamped [2, 0, 1, 3] sums to 6 -> S 3/6, narrative 2/6
    assert dsa(scores, support=support, narrative=narrative, over=paragraph) == pytest.approx(
        1 / 6, abs=1e-15
    )
    assert dsa(scores, support=sciq, narrative=narrative, over=paragraph) == pytest.approx(
        2 / 6, abs=1e-15
    )
    # legacy: the whole context, clamped sum 15 -> S 3/15, narrative 2/15
    assert dsa(scores, support=support, narrative=narrative) == pytest.approx(1 / 15, abs=1e-15)
    with pytest.raises(ValueError, match="inside over"):
        dsa(scores, support=torch.tensor([5]), narrative=narrative, over=paragraph)
    with pytest.raises(ValueError, match="over is empty"):
        dsa(scores, support=support, narrative=narrative, over=torch.zeros(7, dtype=torch.bool))


def test_f1_never_gives_the_sink_a_top_k_slot():
    scores = torch.tensor([9.0, 1.0, 5.0, 4.0])
    support = torch.tensor([2, 3])
    assert topk_f1(scores, support=support) == 0.5  # top-2 {0, 2}
    assert topk_f1(scores, support=support, protected=1) == 1.0  # top-2 of 1..3: {2, 3}
    with pytest.raises(ValueError, match="protected position"):
        topk_f1(scores, support=torch.tensor([0, 2]), protected=1)


def test_alignment_values_follow_the_protocol():
    toy = instances()[0]  # narrative (1, 2), sciq (3, 4, 5), support (4,), question (6,)
    scores = torch.tensor([10.0, 1.0, 0.0, 2.0, 4.0, 1.0, 2.0], dtype=torch.float64)
    standard = alignment_values(toy, 7, scores, protocol="standard")
    assert standard["dsa"] == pytest.approx((4 - 1) / 8, abs=1e-15)  # paragraph mass 8
    assert standard["dsa_coarse"] == pytest.approx((7 - 1) / 8, abs=1e-15)
    assert standard["f1"] == 1.0  # top-1 of positions 1..6 is 4
    legacy = alignment_values(toy, 7, scores, protocol="legacy")
    assert legacy["dsa"] == pytest.approx((4 - 1) / 20, abs=1e-15)  # context mass 20
    assert legacy["f1"] == 0.0  # top-1 is the sink
    assert get_protocol("standard").dsa_over == "paragraph"
