"""AggregatedResult: sums over groups (explicit loops as the oracle), validation, round trips,
the word table and the page's token/word switch."""

import math
import re

import pytest
import torch

import heta_lens as H
from heta_lens import AggregatedResult, AttributionResult, viz
from heta_lens.aggregate import SUMMED
from heta_lens.testing import tiny_bridge

PROMPT = "w5 w7 w3 w9 w31 w6 w33"
U = 2.0**-53  # unit round-off of float64


def _sum_bound(values: torch.Tensor) -> float:
    """Rigorous bound on the rounding error of a recursive float64 sum: (n - 1)·u·Σ|x|."""
    return (values.numel() - 1) * U * float(values.abs().sum()) * 1.01


@pytest.fixture(scope="module")
def model():
    return tiny_bridge()


@pytest.fixture(scope="module")
def heta(model):
    return H.attribute(model, PROMPT)


@pytest.mark.bridge
@pytest.mark.parametrize("level", ["word", [(1, 4), (5, 7)], [(0, 7)]])
def test_every_component_is_the_sum_over_its_group(model, heta, level):
    agg = heta.aggregate(level, tokenizer=model.tokenizer)
    assert set(agg.components) == set(SUMMED)
    for name, summed in {"scores": agg.scores, **agg.components}.items():
        values = getattr(heta, name).double()
        for g, (a, b) in enumerate(agg.groups):
            part = values[a:b]
            assert abs(float(summed[g]) - math.fsum(part.tolist())) <= _sum_bound(part) + U * abs(
                float(summed[g])
            )
        assert abs(float(summed.sum()) - math.fsum(values.tolist())) <= 2 * _sum_bound(values)


@pytest.mark.bridge
def test_words_of_the_tiny_tokenizer_and_bos(model, heta):
    agg = heta.aggregate("word", tokenizer=model.tokenizer)
    assert agg.via == "offsets"
    assert agg.strings == ("w1", *PROMPT.split()[:-1])  # w1 is the BOS the bridge prepends
    assert agg.special[0] and not any(agg.special[1:])
    assert agg.token_group.tolist() == list(range(heta.target))


def test_custom_ranges_leave_other_tokens_as_groups_of_one():
    r = AttributionResult(tokens=torch.arange(8), target=7, scores=torch.arange(7.0), method="toy")
    agg = r.aggregate([(1, 3), (4, 6)])
    assert agg.groups == ((0, 1), (1, 3), (3, 4), (4, 6), (6, 7))
    assert agg.scores.tolist() == [0.0, 3.0, 3.0, 9.0, 6.0] and agg.level == "custom"
    assert agg.token_group.tolist() == [0, 1, 1, 2, 3, 3, 4]
    assert agg.top(2) == [(3, "4 5", 9.0), (4, "6", 6.0)]
    assert agg.components == {}


@pytest.mark.parametrize(
    ("level", "error", "message"),
    [
        ([(0, 3), (2, 5)], ValueError, "overlaps"),
        ([(3, 9)], ValueError, "0 <= start < end <= ctx=7"),
        ([(2, 2)], ValueError, "0 <= start < end"),
        ([(0, 1.5)], TypeError, "pair of ints"),
        ("paragraph", ValueError, "level must be one of"),
    ],
)
def test_bad_levels_are_refused(level, error, message):
    r = AttributionResult(tokens=torch.arange(8), target=7, scores=torch.ones(7), method="toy")
    with pytest.raises(error, match=re.escape(message)):
        r.aggregate(level)


def test_inconsistent_groups_are_refused():
    r = AttributionResult(tokens=torch.arange(4), target=3, scores=torch.ones(3), method="toy")
    common = {"source": r, "level": "custom", "strings": ("a", "b"), "special": (False, False)}
    for groups in (((0, 1), (1, 2)), ((0, 2), (1, 3)), ((0, 0), (0, 3))):
        with pytest.raises(ValueError, match="groups must"):
            AggregatedResult(groups=groups, scores=torch.ones(2), **common)
    with pytest.raises(ValueError, match=r"scores must have shape \[group=2\]"):
        AggregatedResult(groups=((0, 1), (1, 3)), scores=torch.ones(3), **common)


@pytest.mark.bridge
def test_round_trip_through_json(model, heta, tmp_path):
    agg = heta.aggregate("sentence", tokenizer=model.tokenizer)
    agg.save(tmp_path / "a.json")
    back = AggregatedResult.load(tmp_path / "a.json")
    assert (back.groups, back.strings, back.special, back.level, back.via) == (
        agg.groups,
        agg.strings,
        agg.special,
        agg.level,
        agg.via,
    )
    assert torch.equal(back.scores, agg.scores)
    assert all(torch.equal(back.components[k], agg.components[k]) for k in agg.components)
    assert isinstance(back.source, H.HetaResult)
    assert torch.equal(back.source.scores, heta.scores.double())


@pytest.mark.bridge
def test_word_table_ranks_groups_by_summed_score(model, heta):
    agg = heta.aggregate([(1, 4), (4, 7)], tokenizer=model.tokenizer)
    lines = viz.format_groups_table(agg, top=2).splitlines()
    assert lines[0].endswith("(3 spans)") and "span" in lines[1]
    best = int(agg.scores.argmax())
    a, b = agg.groups[best]
    assert lines[2].split()[:2] == ["1", f"{a}-{b - 1}"]


@pytest.mark.bridge
def test_page_switches_between_tokens_and_words(model, heta):
    page = viz.to_html(heta, aggregate="word", tokenizer=model.tokenizer)
    assert '<button type="button" data-view="group">words</button>' in page
    assert '<div data-pane="group" hidden>' in page
    agg = heta.aggregate("word", tokenizer=model.tokenizer)
    cells = re.findall(r'<span class="tok grp" title="[^"]*" data-score="([-\d.]+)"', page)
    expected = agg.scores / agg.scores.abs().max()
    assert [float(c) for c in cells] == [round(float(v), 4) for v in expected]
    gmax = re.search(r'data-comp="score" data-max="[^"]*" data-gmax="([^"]*)"', page)
    assert gmax is not None and float(gmax.group(1)) == pytest.approx(
        float(agg.scores.abs().max()), rel=1e-3
    )
    [back] = viz.results_from_html(page)  # the embedded results stay token-level
    assert torch.equal(back.scores, heta.scores.double())
    assert 'data-view="group"' not in viz.to_html(heta)
    with pytest.raises(ValueError, match="aggregate must be one of"):
        viz.to_html(heta, aggregate="letters")
