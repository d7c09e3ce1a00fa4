"""The active/passive rephrasing pairs: generator = committed file, alignment, ρ."""

import pytest
import torch

from heta_lens.evals.datasets.rephrasing import (
    build_pairs,
    pair_instances,
    read_pairs,
    rephrasing_rho,
    word_scores,
)
from heta_lens.testing import tiny_bridge

pytestmark = pytest.mark.bridge

PAIR = {
    "uid": "toy/0",
    # the tiny word-level tokenizer knows w0..w9 (w1 = BOS, prepended): one token per word
    "active": "w3 w4 w5 w6 w7 w9",
    "passive": "w3 w6 w8 w5 w4 w7 w9",
    "target": "w9",
    "aligned": ["w3", "w4", "w5", "w6", "w7"],
}


def test_committed_pairs_are_the_generator_output_and_well_formed():
    pairs = read_pairs()
    assert pairs == build_pairs()
    assert len(pairs) >= 50
    assert len({(p["active"], p["passive"]) for p in pairs}) == len(pairs)
    for pair in pairs:
        for form in ("active", "passive"):
            words = pair[form].split()
            assert words[-1] == pair["target"]
            for word in pair["aligned"]:
                assert words.count(word) == 1, (pair["uid"], form, word)
        assert pair["active"].split()[-4:] == pair["passive"].split()[-4:]


def test_pair_instances_align_words_to_their_tokens():
    model = tiny_bridge()
    active, passive = pair_instances(model, PAIR)
    assert active.tokens == (1, 3, 4, 5, 6, 7, 9)
    assert active.targets == (6,) and passive.targets == (7,)
    assert active.regions["word:w4"] == (2,) and passive.regions["word:w4"] == (5,)
    assert active.meta["pair"] == passive.meta["pair"] == "toy/0"
    a_scores = torch.arange(6, dtype=torch.float64)  # word w_k gets score (position of w_k)
    torch.testing.assert_close(
        word_scores(active, a_scores), torch.tensor([1.0, 2, 3, 4, 5], dtype=torch.float64)
    )
    same = torch.zeros(7, dtype=torch.float64)
    for k, word in enumerate(PAIR["aligned"]):
        same[passive.regions[f"word:{word}"][0]] = k + 1.0
    assert rephrasing_rho(active, a_scores, passive, same) == pytest.approx(1.0)
    assert rephrasing_rho(active, a_scores, passive, -same) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="not the two forms"):
        rephrasing_rho(active, a_scores, active.__class__(**{**active.__dict__, "meta": {}}), same)


def test_missing_or_shared_words_are_rejected():
    model = tiny_bridge()
    with pytest.raises(ValueError, match="not found"):
        pair_instances(model, {**PAIR, "aligned": ["w3", "w40"]})
    with pytest.raises(ValueError, match="no context token"):
        pair_instances(model, {**PAIR, "aligned": ["w3", "w9"]})


def test_rephrasing_by_method_takes_each_pair_from_stored_rows():
    from heta_lens.evals.reports import rephrasing_by_method

    active, passive = pair_instances(tiny_bridge(), PAIR)
    a_scores = list(range(6))
    same = [0.0] * 7
    for k, word in enumerate(PAIR["aligned"]):
        same[passive.regions[f"word:{word}"][0]] = k + 1.0
    rows = [
        {"uid": active.uid, "method": "m", "scores": a_scores},
        {"uid": passive.uid, "method": "m", "scores": same},
        {"uid": active.uid, "method": "flip", "scores": a_scores},
        {"uid": passive.uid, "method": "flip", "scores": [-x for x in same]},
        {"uid": active.uid, "method": "half", "scores": a_scores},  # passive row missing
    ]
    got = rephrasing_by_method(rows, [active, passive])
    assert set(got) == {"m", "flip"}
    assert got["m"].mean == pytest.approx(1.0) and got["m"].n == 1
    assert got["flip"].mean == pytest.approx(-1.0)
