"""LongRA: ReAGent's filter on a stub tokenizer/model whose predictions the test controls, and
the real candidates file."""

import json
import re
from pathlib import Path

import pytest

from heta_lens.evals.datasets.align import Encoded
from heta_lens.evals.datasets.longra import (
    CANDIDATES,
    DROP_ANTECEDENT,
    DROP_LONG,
    DROP_TARGET,
    DROP_WITH,
    DROP_WITHOUT,
    filter_candidates,
    read_candidates,
)
from heta_lens.models import default_data_dir

MULTI_TOKEN = {"Baghdad", "Thailand"}  # the stub tokenizer splits these into two pieces


class StubTokenizer:
    """Pieces = optional leading space + a word or a punctuation run; BOS id 0 (offset (0, 0));
    words in MULTI_TOKEN are split in the middle. Ids are assigned on first sight."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {"<bos>": 0}

    def _id(self, piece: str) -> int:
        return self.vocab.setdefault(piece, len(self.vocab))

    def encode(self, text: str) -> Encoded:
        ids, offsets = [0], [(0, 0)]
        for m in re.finditer(r" ?\w+| ?[^\w\s]+", text):
            a, b = m.span()
            pieces = [(a, b)]
            if m.group().strip() in MULTI_TOKEN:
                mid = (a + b + 1) // 2
                pieces = [(a, mid), (mid, b)]
            for s, e in pieces:
                ids.append(self._id(text[s:e]))
                offsets.append((s, e))
        return Encoded(ids=tuple(ids), offsets=tuple(offsets))

    def decode(self, ids) -> str:
        inverse = {v: k for k, v in self.vocab.items()}
        return "".join(inverse[i] for i in ids if i != 0)


# antecedent -> (greedy word with the distractor, greedy word without it)
PAIRS = [
    ("Greece", "Athens", ("Athens", "Athens")),  # kept
    ("Iraq", "Baghdad", ("Baghdad", "Baghdad")),  # target is two tokens
    ("Thailand", "Bangkok", ("Bangkok", "Bangkok")),  # antecedent is two tokens
    ("France", "Paris", ("Lyon", "Paris")),  # wrong with the distractor
    ("Japan", "Tokyo", ("Tokyo", "Kyoto")),  # wrong without it
    ("Egypt", "Cairo", ("Cairo", "Cairo")),  # kept
]


def _prompt(antecedent: str) -> str:
    return f"I landed in {antecedent}, then slept. (I dreamt of my granny, oddly). The capital,"


def _write_candidates(path: Path, pairs=PAIRS) -> Path:
    rows = [
        {
            "category": "capital-world",
            "pair_idx": i,
            "A": target,
            "B": antecedent,
            "prompt": _prompt(antecedent),
            "target_word": target,
            "antecedent_word": antecedent,
        }
        for i, (antecedent, target, _) in enumerate(pairs)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _predictor(tok: StubTokenizer, calls: list[tuple[int, ...]]):
    def predict(ids: tuple[int, ...]) -> int:
        calls.append(ids)
        text = tok.decode(ids)
        antecedent = re.search(r"landed in (\w+)", text).group(1)
        with_d, without_d = dict((a, p) for a, _, p in PAIRS)[antecedent]
        return tok._id(" " + (with_d if "(" in text else without_d))

    return predict


def test_filter_keeps_exactly_the_candidates_reagent_keeps(tmp_path: Path):
    tok, calls = StubTokenizer(), []
    candidates = read_candidates(_write_candidates(tmp_path / "c.jsonl"))
    kept, stats = filter_candidates(
        candidates, encode=tok.encode, predict=_predictor(tok, calls), n_ctx=100
    )
    assert [k.uid for k in kept] == ["longra-capital-world-0", "longra-capital-world-5"]
    assert stats.n_candidates == 6 and stats.n_kept == 2
    assert stats.dropped == {
        DROP_TARGET: 1,
        DROP_ANTECEDENT: 1,
        DROP_LONG: 0,
        DROP_WITH: 1,
        DROP_WITHOUT: 1,
    }
    inst = kept[0]
    prompt = _prompt("Greece")
    assert inst.tokens == tok.encode(prompt + " Athens").ids
    assert inst.targets == (len(inst.tokens) - 1,)
    assert tok.decode(inst.tokens[inst.targets[0] :]) == " Athens"
    assert tok.decode([inst.tokens[p] for p in inst.regions["antecedent"]]) == " Greece"
    assert tok.decode([inst.tokens[p] for p in inst.regions["distractor"]]) == (
        " (I dreamt of my granny, oddly)."
    )
    # The two predictions were made from the prompt and from the prompt with the parenthetical
    # removed at the character level (an independent construction of the "without" input).
    without_text = re.sub(r" \([^()]*\)\.", "", prompt)
    assert tok.encode(prompt).ids in calls
    assert tok.encode(without_text).ids in calls


def test_too_long_candidates_are_dropped(tmp_path: Path):
    tok = StubTokenizer()
    candidates = read_candidates(_write_candidates(tmp_path / "c.jsonl"))
    n_prompt = len(tok.encode(_prompt("Greece")))
    with pytest.raises(ValueError, match=rf"0 of 6 .*4 {DROP_LONG}"):
        filter_candidates(
            candidates, encode=tok.encode, predict=_predictor(tok, []), n_ctx=n_prompt
        )


def test_zero_survivors_error_says_why(tmp_path: Path):
    tok = StubTokenizer()
    candidates = read_candidates(_write_candidates(tmp_path / "c.jsonl"))

    def never(ids: tuple[int, ...]) -> int:  # noqa: ARG001
        return tok._id(" nowhere")

    with pytest.raises(ValueError, match=r"0 of 6 LongRA candidates survived") as err:
        filter_candidates(candidates, encode=tok.encode, predict=never, n_ctx=100)
    assert f"4 {DROP_WITH}" in str(err.value) and f"1 {DROP_TARGET}" in str(err.value)


def test_limit_stops_after_enough_survivors(tmp_path: Path):
    tok = StubTokenizer()
    candidates = read_candidates(_write_candidates(tmp_path / "c.jsonl"))
    kept, stats = filter_candidates(
        candidates, encode=tok.encode, predict=_predictor(tok, []), n_ctx=100, limit=1
    )
    assert [k.uid for k in kept] == ["longra-capital-world-0"]
    assert stats.n_candidates == 1 and stats.n_kept == 1


def test_candidate_errors_name_the_record(tmp_path: Path):
    path = tmp_path / "c.jsonl"
    _write_candidates(path, pairs=[("Greece", "Athens", ("Athens", "Athens"))])
    row = json.loads(path.read_text())
    path.write_text(json.dumps({**row, "prompt": "no parenthetical in Greece here,"}) + "\n")
    with pytest.raises(ValueError, match=r"record 1: prompt lacks"):
        read_candidates(path)
    del row["target_word"]
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(ValueError, match=rf"{path}:1: missing required field"):
        read_candidates(path)


def test_real_candidates_file():
    candidates = read_candidates(default_data_dir() / CANDIDATES)
    assert len(candidates) == 573
    fixed = {(c.antecedent_word, c.target_word) for c in candidates if c.case_fixed}
    assert fixed == {("Europe", "Euro"), ("Korea", "Won")}
    plain = read_candidates(default_data_dir() / CANDIDATES, case_fix=False)
    assert {c.target_word for c in plain if c.category == "currency"} >= {"euro", "won"}
    for c in candidates:
        a, b = c.distractor_span
        assert c.prompt[a] == "(" and c.prompt[b - 2 : b] == ")."
        s, e = c.antecedent_span
        assert c.prompt[s:e] == c.antecedent_word
        assert not c.prompt.endswith(" ") and c.uid.startswith("longra-")
    assert len({c.uid for c in candidates}) == 573
