"""Many prompts and word-level scores on SmolLM2-135M: the bridge's results, BOS included."""

import json
import math

import pytest

import heta_lens as H

pytestmark = [pytest.mark.slow, pytest.mark.bridge]

RECORDS = [
    {
        "id": "price",
        "text": "In 2024, the price rose 3.14% to $1,250.50! It",
        "target_text": " was",
    },
    {
        "id": "ioi",
        "text": "When Mary and John went to the store, John gave a drink to",
        "target_text": " Mary",
        "contrast": " John",
    },
]


@pytest.mark.usefixtures("no_network")
def test_word_lines_of_a_real_model(smollm2, tmp_path):
    out = tmp_path / "r.jsonl"
    spec = H.get_method("heta").with_preset("fast").with_probes(1)
    results = list(H.attribute_many(smollm2, RECORDS, method=spec, out=out, aggregate="word"))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["key"] for line in lines] == ["price", "ioi"]
    for record, result, line in zip(RECORDS, results, lines, strict=True):
        words = H.AggregatedResult.from_dict(line["aggregate"])
        assert words.via == "offsets"
        assert words.special[0] and not any(words.special[1:])  # the BOS the bridge prepends
        assert [s.strip() for s in words.strings[1:]] == record["text"].split()
        values = result.scores.double()
        # float64 sums of the group sums: within the recursive-summation bound 2(n-1)·u·Σ|x|
        bound = 2 * (values.numel() - 1) * 2.0**-53 * float(values.abs().sum())
        assert abs(float(words.scores.sum()) - math.fsum(values.tolist())) <= bound
        assert float(words.components["gate"].sum()) == pytest.approx(1.0, abs=1e-5)
    before = out.read_text()
    again = list(H.attribute_many(smollm2, RECORDS, method=spec, out=out, progress=False))
    assert out.read_text() == before  # nothing recomputed
    assert [json.dumps(r.to_dict()) for r in again] == [json.dumps(r.to_dict()) for r in results]
