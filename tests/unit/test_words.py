"""Word and sentence grouping (heta_lens.words) against hand-labelled texts and str.split()."""

import pytest

from heta_lens.words import opens_sentence, piece_text, segment

TEXTS = [
    "In 2024, the price rose 3.14% to $1,250.50!",
    'Unbelievably, John\'s dog-walker said: "no."\nNext line… ok?',
    "  Leading spaces, trailing ones.  ",
    "Call 555-0199 at 10:30 a.m. Then e-mail (info@example.com).",
]
SENTENCES = [
    ["In 2024, the price rose 3.14% to $1,250.50!"],
    ['Unbelievably, John\'s dog-walker said: "no."', "Next line…", "ok?"],
    ["Leading spaces, trailing ones."],
    ["Call 555-0199 at 10:30 a.m.", "Then e-mail (info@example.com)."],
]


def sp_tokenizer():
    """A small SentencePiece-style tokenizer like Gemma 3's (spaces → ``▁`` by the normalizer,
    ``▁`` → space by the decoder, pieces start at a ``▁``), BPE trained here on TEXTS."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.normalizer = normalizers.Replace(" ", "▁")
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split("▁", "merged_with_next"), pre_tokenizers.Split("\n", "isolated")]
    )
    core.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.Fuse()])
    alphabet = [chr(c) for c in range(32, 127)] + ["▁", "…", "\n"]
    trainer = trainers.BpeTrainer(
        vocab_size=150,
        special_tokens=["<pad>", "<eos>", "<bos>", "<unk>"],
        initial_alphabet=alphabet,
    )
    core.train_from_iterator(TEXTS * 3, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>"
    )


def layout(tokenizer, text):
    ids = [tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]
    strings = [tokenizer.decode([i]) for i in ids]
    return ids, strings


def group_texts(tokenizer, ids, seg):
    return [tokenizer.decode(ids[a:b]) for a, b in seg.groups]


def check_partition(seg, n):
    covered = [i for a, b in seg.groups for i in range(a, b)]
    assert covered == list(range(n))  # every token exactly once, groups in order


@pytest.fixture(scope="module")
def sp():
    return sp_tokenizer()


@pytest.mark.parametrize("how", ["offsets", "decoded strings", "raw pieces"])
@pytest.mark.parametrize(("text", "sentences"), list(zip(TEXTS, SENTENCES, strict=True)))
def test_sentencepiece_words_and_sentences_match_hand_labels(sp, text, sentences, how):
    ids, strings = layout(sp, text)
    assert len(ids) > len(text.split()) + 1  # multi-piece words: the test means something
    kwargs = {"tokenizer": sp} if how == "offsets" else {}
    if how == "raw pieces":
        strings = sp.convert_ids_to_tokens(ids)
        assert any("▁" in s for s in strings)
    for level, expected in (("word", text.split()), ("sentence", sentences)):
        seg = segment(ids, strings, level, **kwargs)
        check_partition(seg, len(ids))
        assert seg.via == ("offsets" if how == "offsets" else "pieces")
        assert seg.groups[0] == (0, 1) and seg.special[0]  # BOS: a group of its own
        assert not any(seg.special[1:])
        assert [t.strip() for t in group_texts(sp, ids, seg)[1:]] == expected


def test_whitespace_only_tokens_join_the_next_word_and_trailing_the_last():
    strings = ["<s>", "Hi", ",", " ", " ", "there", "\n", "  ", "<s>", " ", "x"]
    seg = segment(range(11), strings, "word")
    assert seg.groups == ((0, 1), (1, 3), (3, 8), (8, 9), (9, 11))
    assert seg.special == (True, False, False, True, False)


def test_a_token_spanning_two_words_joins_the_one_it_starts_in():
    seg = segment(range(4), ["The", " end", ".\nNext", " one"], "word")
    assert seg.groups == ((0, 1), (1, 3), (3, 4))
    seg = segment(range(4), ["The", " end", ".\nNext", " one"], "sentence")
    assert seg.groups == ((0, 4),)  # no boundary inside a token


def test_one_character_split_over_byte_tokens_stays_one_word():
    # Byte-level offsets give every byte token of a multi-byte character the same span.
    class Fake:
        all_special_ids: list[int] = []

        def decode(self, *_args, **_kwargs):
            return " 🙂 ok"

        def __call__(self, *_args, **_kwargs):
            return {"input_ids": [0, 1, 2, 3], "offset_mapping": [(0, 2), (1, 2), (1, 2), (2, 5)]}

    seg = segment([0, 1, 2, 3], None, "word", tokenizer=Fake())
    assert seg.groups == ((0, 3), (3, 4)) and seg.via == "offsets"


def test_offsets_that_do_not_round_trip_fall_back_to_raw_pieces():
    class Fake:
        all_special_ids = [9]

        def decode(self, *_args, **_kwargs):
            return "ab cd"

        def __call__(self, *_args, **_kwargs):
            return {"input_ids": [5, 6], "offset_mapping": [(0, 2), (2, 5)]}

        def convert_ids_to_tokens(self, ids):
            return [{9: "<bos>", 1: "a", 2: "b", 3: "Ġc", 4: "d"}[i] for i in ids]

    seg = segment([9, 1, 2, 3, 4], None, "word", tokenizer=Fake())
    assert seg.groups == ((0, 1), (1, 3), (3, 5)) and seg.via == "pieces"
    assert seg.special == (True, False, False)


@pytest.mark.parametrize(
    ("pieces", "text"),
    [
        (["ĠThe", "Ġcat", "Ċ", "ĉx"], [" The", " cat", "\n", "\tx"]),
        (["▁The", "▁cat", "<0x0A>", "."], [" The", " cat", "\n", "."]),
        ([" The", "Ġ"], [" The", "Ġ"]),  # decoded strings (a real space) are left alone
    ],
)
def test_piece_conventions_are_read_as_whitespace(pieces, text):
    assert piece_text(pieces) == text


@pytest.mark.parametrize(
    ("strings", "special"),
    [
        (["<|im_start|>", "user", "<|im_end|>"], (True, False, True)),
        (["<bos>", "<0x0A>", "</s>", "<s>", "a<b>"], (True, False, True, True, False)),
    ],
)
def test_special_strings_are_groups_of_their_own(strings, special):
    seg = segment(range(len(strings)), strings, "word")
    got = {a: s for (a, _), s in zip(seg.groups, seg.special, strict=True)}
    assert all(got.get(i, False) == flag for i, flag in enumerate(special))
    assert [got[i] for i, flag in enumerate(special) if flag] == [True] * sum(special)


@pytest.mark.parametrize(
    ("text", "c", "expected"),
    [
        ("Hi. There", 4, True),
        ("Hi.) There", 5, True),
        ('He said "no." Then', 14, True),
        ("pi is 3.14 exactly", 11, False),
        ("line one\nline two", 9, True),
        ("no stop here", 3, False),
        ("Wait... what", 8, True),
        ("mid-word", 4, False),
    ],
)
def test_sentence_starts(text, c, expected):
    assert opens_sentence(text, c) is expected


def test_bad_level_or_nothing_to_read_raises():
    with pytest.raises(ValueError, match="level must be one of"):
        segment([1], ["a"], "paragraph")
    with pytest.raises(ValueError, match="pass tokenizer="):
        segment([1], None, "word")
