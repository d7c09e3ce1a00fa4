"""attribute_many: one result per record equal to the registry call, streamed to JSONL, resumed."""

import json
import re
from dataclasses import replace

import pytest
import torch

import heta_lens as H
from heta_lens import AggregatedResult, Record, attribute_many, read_records, read_results
from heta_lens.batch import read_lines
from heta_lens.registry import MethodSpec
from heta_lens.targets import Contrast, Span, Token
from heta_lens.testing import tiny_bridge

RECORDS = [
    {"id": "a", "text": "w5 w7 w3 w9", "target_text": " w31"},
    {"id": 7, "text": "w5 w7 w3", "target_text": " w32", "contrast": " w8"},
    {"text": "w5 w7 w9", "span": " w33 w34", "method": "occlusion", "meta": {"label": 1}},
    {"id": "d", "text": "w5 w6 w7 w8", "target_index": 3},
    {"id": "e", "text": "w9 w8 w7"},
]


@pytest.fixture(scope="module")
def model():
    return tiny_bridge()


def _expected(model, record):
    """The same attribution run by hand through the registry (the oracle)."""
    spec = H.get_method(record.get("method", "heta"))
    text = record["text"]
    if "contrast" in record:
        return spec(model, text, target=Contrast(record["target_text"], record["contrast"]))
    if "span" in record:
        return spec(model, text, target=Span(record["span"]))
    if "target_text" in record:
        tokens = model.to_tokens(text + record["target_text"])[0]
        return spec(model, tokens, target=Token(len(tokens) - 1))
    if "target_index" in record:
        return spec(model, model.to_tokens(text)[0], target=record["target_index"])
    tokens = model.to_tokens(text)[0]
    greedy = model(tokens[None])[0, -1].argmax()
    return spec(model, torch.cat([tokens, greedy[None]]), target=len(tokens))


@pytest.mark.bridge
def test_results_equal_the_registry_call_and_round_trip_through_the_file(model, tmp_path):
    out = tmp_path / "r.jsonl"
    results = list(attribute_many(model, RECORDS, out=out, progress=False))
    keys = ["a", "7", Record.from_json(RECORDS[2]).key, "d", "e"]
    assert keys[2].startswith("sha256:") and len(keys[2]) == len("sha256:") + 16
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["key"] for line in lines] == keys
    assert [line["method"] for line in lines] == ["heta", "heta", "occlusion", "heta", "heta"]
    assert lines[2]["record"]["meta"] == {"label": 1}
    assert lines[0]["config"] == H.HetaConfig().to_dict()
    back = read_results(out)
    assert list(back) == keys
    for record, got, key in zip(RECORDS, results, keys, strict=True):
        want = _expected(model, record)
        assert type(got) is type(want) and got.target_kind == want.target_kind
        assert torch.equal(got.tokens, want.tokens) and got.target == want.target
        assert torch.equal(got.scores, want.scores)
        stored = back[key]
        assert type(stored) is type(got)
        assert json.dumps(stored.to_dict()) == json.dumps(got.to_dict())  # NaN == NaN here


@pytest.mark.bridge
def test_a_rerun_computes_only_missing_records_and_repairs_a_cut_line(model, tmp_path):
    calls = []
    occlusion = H.get_method("occlusion")

    def counted(model, tokens, *, target, config):
        calls.append(target)
        return occlusion.fn(model, tokens, target=target, config=config)

    spec = replace(occlusion, fn=counted)
    records = [{"id": i, "text": f"w{5 + i} w7 w3 w9", "target_index": 2} for i in range(5)]
    full = tmp_path / "full.jsonl"
    list(attribute_many(model, records, method=spec, out=full, progress=False))
    assert len(calls) == 5
    part = tmp_path / "part.jsonl"
    list(attribute_many(model, records[:2], method=spec, out=part, progress=False))
    text = full.read_text()
    cut = text.split("\n")[2]
    part.write_text(part.read_text() + cut[: len(cut) // 2])  # a kill mid-line
    calls.clear()
    again = list(attribute_many(model, records, method=spec, out=part, progress=False))
    assert len(calls) == 3  # records 2, 3, 4; 0 and 1 were read back
    assert part.read_text() == text
    stored = read_results(full).values()
    assert [json.dumps(r.to_dict()) for r in again] == [json.dumps(r.to_dict()) for r in stored]


@pytest.mark.bridge
def test_aggregate_lines_hold_the_word_view(model, tmp_path):
    out = tmp_path / "r.jsonl"
    [result] = attribute_many(model, RECORDS[:1], out=out, aggregate="word", progress=False)
    stored = AggregatedResult.from_dict(read_lines(out)["a"]["aggregate"])
    expected = result.aggregate("word", tokenizer=model.tokenizer)
    assert stored.groups == expected.groups and stored.strings == expected.strings
    assert torch.equal(stored.scores, expected.scores)


@pytest.mark.bridge
def test_resuming_with_another_config_is_refused(model, tmp_path):
    out = tmp_path / "r.jsonl"
    list(attribute_many(model, RECORDS[:1], out=out, progress=False))
    before = out.read_text()
    with pytest.raises(ValueError, match="computed with another method or config"):
        attribute_many(model, RECORDS[:1], method=H.get_method("heta").with_preset("fast"), out=out)
    with pytest.raises(ValueError, match="computed with another method or config"):
        attribute_many(model, [{**RECORDS[0], "method": "occlusion"}], out=out)
    with pytest.raises(ValueError, match="holds record 'a' with other content"):
        attribute_many(model, [{**RECORDS[0], "text": "w5 w7"}], out=out)
    list(attribute_many(model, [{**RECORDS[0], "meta": 1}], out=out, progress=False))
    assert out.read_text() == before


@pytest.mark.bridge
def test_a_failing_record_names_itself_and_keeps_earlier_lines(model, tmp_path):
    out = tmp_path / "r.jsonl"
    records = [RECORDS[0], {"id": "long", "text": "w5 w7", "target_text": " w31 w32"}]
    with pytest.raises(ValueError, match="record 'long': target_text ' w31 w32' is 2 tokens"):
        list(attribute_many(model, records, out=out, progress=False))
    assert list(read_lines(out)) == ["a"]


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([{"text": "w5"}, {"text": "w5"}], "records 0 and 1 have the same key"),
        ([{"id": 1, "text": "w5"}, {"id": "1", "text": "w6"}], "same key '1'"),
        ([{"txt": "w5"}], "record 0: unknown record field(s) ['txt']"),
        ([{"text": ""}], "non-empty string"),
        ([{"text": "w5", "span": " w6", "target_text": " w7"}], "gives target_text and span"),
        ([{"text": "w5", "span": " w6", "contrast": " w7"}], "contrast takes its answer"),
        ([{"text": "w5", "method": "lime"}], "unknown method 'lime'"),
        ([{"text": "w5", "target": {"kind": "metric"}}], "Metric target is Python-only"),
        ([{"text": "w5", "target": {"kind": "token", "idx": 1}}], "bad token target fields"),
        ([{"text": "w5", "target": {"kind": "token"}, "span": " w6"}], "cannot also give"),
    ],
)
def test_bad_records_are_refused_before_anything_runs(records, message, tmp_path):
    out = tmp_path / "r.jsonl"
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        list(attribute_many(torch.nn.Linear(1, 1), records, out=out))
    assert not out.exists()


def test_record_keys_and_json():
    assert Record(text="w5", id=3).key == "3"
    a, b = Record(text="w5", span=" w6"), Record(text="w5", span=" w7")
    assert a.key != b.key and a.key == Record.from_json(a.to_json()).key
    assert Record(text="w5", span=" w6", meta={"x": 1}).key == a.key  # meta is not identity
    c = Record.from_json({"text": "w5", "target": {"kind": "contrast", "answer": 4, "foil": 8}})
    assert c.target == Contrast(4, 8) and Record.from_json(c.to_json()) == c
    assert Record.from_json(
        {"text": "w5", "target": {"kind": "span", "continuation": [6, 7]}}
    ).target == Span((6, 7))
    r = Record(text="w5", target=Contrast(" w6", " w7", position=-2))
    assert r.to_json()["target"] == {
        "kind": "contrast",
        "answer": " w6",
        "foil": " w7",
        "position": -2,
        "kl": "pair",
    }
    with pytest.raises(ValueError, match="Metric target needs an id"):
        Record(text="w5", target=H.Metric("blocks.0.hook_resid_post", torch.sum, position=0))
    with pytest.raises(TypeError, match="id must be a string or an integer"):
        Record(text="w5", id=1.5)


def test_read_records_names_the_line(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "w5"}\n\n{"text": "w6", "spam": 1}\n')
    with pytest.raises(ValueError, match=re.escape("in.jsonl:3: unknown record field(s) ['spam']")):
        read_records(path)
    path.write_text('{"text": "w5"}\nnot json\n')
    with pytest.raises(ValueError, match="in.jsonl:2: malformed JSON"):
        read_records(path)
    path.write_text('{"text": "w5"}\n{"id": "x", "text": "w6", "span": " w7"}')  # no final \n
    assert [r.key for r in read_records(path)][1] == "x"


@pytest.mark.bridge
def test_an_unregistered_method_spec_runs_and_is_recorded(model, tmp_path):
    fn = H.get_method("occlusion").fn
    spec = MethodSpec(name="mine", fn=fn, default_config=None, description="")
    out = tmp_path / "r.jsonl"
    [got] = attribute_many(model, RECORDS[3:4], method=spec, out=out, progress=False)
    line = read_lines(out)["d"]
    assert got.method == line["method"] == "mine" and line["config"] is None
    want = fn(model, model.to_tokens(RECORDS[3]["text"])[0], target=3, config=None)
    assert torch.equal(got.scores, want.scores)
