"""The curated NarrativeQA ⊕ SciQ builder (pure text) and the curated JSONL schema."""

import csv
import json
import re
from pathlib import Path

import pytest

from heta_lens.evals.datasets import build_curated, read_curated, write_curated
from heta_lens.evals.datasets.curated_build import (
    MAX_WORDS,
    NARRATIVES,
    SCIQ,
    content_words,
    split_sentences,
)
from heta_lens.evals.datasets.jsonl import read_jsonl
from heta_lens.models import default_data_dir


@pytest.fixture(scope="module")
def rows():
    return build_curated()


def test_build_is_deterministic_and_large(rows):
    assert len(rows) == 2400 >= 2000
    assert build_curated() == rows
    assert len({r["id"] for r in rows}) == len(rows)
    pairs = {(r["sciq_index"], json.dumps(r["narrative_source"])) for r in rows}
    assert len(pairs) == len(rows)
    other = build_curated(n=50, seed=1)
    assert [r["sciq_index"] for r in other] == [r["sciq_index"] for r in rows[:50]]
    assert [r["narrative"] for r in other] != [r["narrative"] for r in rows[:50]]


def test_answer_spans_really_occur_in_support(rows):
    for r in rows:
        support, answer = r["support"], r["answer"]
        assert r["answer_spans"], r["id"]
        for a, b in r["answer_spans"]:
            assert support[a:b].lower() == answer.lower()
            assert not (a > 0 and support[a - 1].isalnum())
            assert not (b < len(support) and support[b].isalnum())
            assert any(s <= a and b <= e for s, e in r["support_spans"])


def test_support_spans_follow_the_rule(rows):
    for r in rows[:400]:
        wanted = content_words(r["question"])
        answers = [tuple(s) for s in r["answer_spans"]]
        spans = r["support_spans"]
        assert spans == sorted(spans)
        assert all(b1 <= a2 for (_, b1), (a2, _) in zip(spans, spans[1:], strict=False))
        for a, b in spans:
            text = r["support"][a:b]
            is_answer_part = any(s <= a and b <= e or a <= s and e <= b for s, e in answers)
            assert is_answer_part or (text.isalpha() and text.lower() in wanted), (r["id"], text)
        # every question content word present in the support is annotated
        for m in re.finditer(r"[A-Za-z]+", r["support"]):
            if m.group().lower() in wanted:
                assert any(s <= m.start() and m.end() <= e for s, e in spans)


def test_segments_come_from_their_sources(rows):
    root = default_data_dir()
    summaries = {
        s["document_id"]: " ".join(s["summary_detok"].split())
        for s in read_jsonl(root / NARRATIVES)
    }
    with (root / SCIQ).open(newline="") as handle:
        sciq = list(csv.DictReader(handle))
    for r in rows[:600]:
        assert r["narrative"] in summaries[r["narrative_source"]["document_id"]]
        assert 2 <= len(split_sentences(r["narrative"])) <= 3
        assert len(r["narrative"].split()) <= MAX_WORDS
        source = sciq[r["sciq_index"]]
        assert r["support"] in " ".join(source["support"].split())
        assert len(r["support"].split()) <= MAX_WORDS
        assert r["answer"] == " ".join(source["correct_answer"].split())
        assert r["question"] == " ".join(source["question"].split())


def test_split_sentences():
    text = 'Mr. Smith met Dr. J. Watson at 5 p.m. in St. Ives. "Hello!" he said. Then (x) 3 left?'
    assert split_sentences(text) == [
        "Mr. Smith met Dr. J. Watson at 5 p.m. in St. Ives.",
        '"Hello!" he said.',
        "Then (x) 3 left?",
    ]
    assert split_sentences("one. two. Three") == ["one. two.", "Three"]


def test_write_and_read_round_trip(rows, tmp_path: Path):
    path = write_curated(tmp_path / "c.jsonl", rows[:20])
    assert read_curated(path) == rows[:20]


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop("support_spans"), r"missing required field\(s\) \['support_spans'\]"),
        (lambda r: r.update(answer=""), "answer must be a non-empty string"),
        (lambda r: r.update(support_spans=[[0, 10_000]]), "support_spans must be a list"),
        (lambda r: r.update(support_spans=[[5, 2]]), "support_spans must be a list"),
        (lambda r: r.update(id="curated-00000"), "duplicate id"),
    ],
)
def test_schema_errors_name_the_line(rows, tmp_path: Path, mutate, message):
    bad = dict(rows[1])
    mutate(bad)
    lines = [json.dumps(rows[0]), "", json.dumps(bad)]
    path = _write_lines(tmp_path / "bad.jsonl", lines)
    with pytest.raises(ValueError, match=rf"{path}:3: {message}"):
        read_curated(path)


def test_malformed_line_is_named(rows, tmp_path: Path):
    path = _write_lines(tmp_path / "bad.jsonl", [json.dumps(rows[0]), '{"id": "x",'])
    with pytest.raises(ValueError, match=rf"{path}:2: malformed JSON"):
        read_curated(path)


def test_write_refuses_invalid_rows_and_leaves_nothing(rows, tmp_path: Path):
    bad = {**rows[1], "support_spans": [[0, 10_000]]}
    with pytest.raises(ValueError, match="row 2"):
        write_curated(tmp_path / "c.jsonl", [rows[0], bad])
    assert not list(tmp_path.iterdir())


def test_missing_sources_name_path_and_option(tmp_path: Path):
    (tmp_path / "narrativeqa").mkdir()
    with pytest.raises(FileNotFoundError, match=r"--data-dir") as err:
        build_curated(data_dir=tmp_path)
    assert str(tmp_path / SCIQ) in str(err.value)
    with pytest.raises(ValueError, match=r"n must lie in"):
        build_curated(n=0)
