"""Group tokens into words and sentences: token index ranges from a tokenizer or token strings.

Definitions (the same whatever the tokenizer):

- **word**: a maximal run of non-whitespace characters of the text (Python's ``str.split()``),
  so punctuation stays with the word it touches (``"Paris."``, ``"$1,250.50"``, ``"dog-walker"``).
  A token belongs to the word holding its first non-whitespace character; whitespace-only
  tokens belong to the word after them (whitespace at the very end joins the last word).
- **sentence**: a run of words ending at a line break, or after a word whose last character
  (closing quotes and brackets skipped) is terminal punctuation ``. ! ? …`` (or ``。！？``)
  followed by whitespace. So ``"3.14"`` does not end a sentence but ``"e.g. the"`` does.
- **special tokens** (BOS, chat-template markers) are groups of their own and boundaries
  that no word or sentence crosses.

A token is never split: a token covering the end of one word and the start of the next
(e.g. ``".\\nThe"``) joins the word it starts in. Every token of the context lands in exactly
one group, and groups are contiguous, in order.

Where each token's characters lie comes from, in order of preference:

1. ``offsets`` — the tokenizer's own character offsets (``return_offsets_mapping``, fast
   tokenizers): each run of non-special ids is decoded and re-encoded, and used when the
   re-encoding gives the same ids (it does not for non-canonical tokenizations, e.g. some
   generated continuations; that run falls back to 2).
2. ``pieces`` — token strings laid end to end: the tokenizer's raw pieces, or the result's
   decoded ``token_strings`` without a tokenizer. Raw pieces use byte-level BPE's ``Ġ``
   (space) / ``Ċ`` (newline) or SentencePiece's ``▁`` (space) and ``<0x0A>`` byte pieces;
   these are read as the whitespace they stand for. (``tokenizer.word_ids()`` is not used:
   byte-level pre-tokenizers split every digit into its own "word" and SentencePiece
   tokenizers without a pre-tokenizer put the whole text in one.)

Special tokens are the tokenizer's ``all_special_ids``; without a tokenizer, strings shaped
like ``<bos>``, ``</s>`` or ``<|im_start|>`` (byte pieces such as ``<0x0A>`` excepted).
"""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

LEVELS = ("word", "sentence")
TERMINAL = ".!?…。！？"
"""Characters that end a sentence when whitespace follows them."""
CLOSERS = "\"'”’)]}»"
"""Closing quotes and brackets allowed between terminal punctuation and the whitespace."""

_SPECIAL = re.compile(r"^<\|?[^\s<>|]+\|?>$")
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")
# Byte-level BPE maps the whitespace bytes to these printable characters (GPT-2's table).
_BYTE_LEVEL_SPACE = str.maketrans(
    {"Ġ": " ", "Ċ": "\n", "ĉ": "\t", "č": "\r", "ċ": "\x0b", "Č": "\x0c", "▁": " "}
)

Opens = Callable[[str, int], bool]


@dataclass(frozen=True)
class Segmentation:
    """Groups of one token sequence (the context of a result).

    Attributes:
        groups: Half-open token ranges ``(start, end)``, contiguous, covering every token.
        special: Whether each group is a special token (always a group of one token).
        via: Where character positions came from: ``"offsets"``, ``"pieces"`` (some or all
            runs of tokens), or ``"custom"`` for ranges given by the caller.
    """

    groups: tuple[tuple[int, int], ...]
    special: tuple[bool, ...]
    via: str


def opens_word(text: str, c: int) -> bool:
    """Whether character ``c`` of ``text`` starts a word (text start or after whitespace)."""
    return c == 0 or text[c - 1].isspace()


def opens_sentence(text: str, c: int) -> bool:
    """Whether character ``c`` (not whitespace) of ``text`` starts a sentence.

    True at the text start, after whitespace holding a line break, or after whitespace that
    follows terminal punctuation (closing quotes/brackets in between allowed).
    """
    if not opens_word(text, c):
        return False
    j = c - 1
    while j >= 0 and text[j].isspace():
        j -= 1
    if j < 0 or "\n" in text[j + 1 : c]:
        return True
    while j > 0 and text[j] in CLOSERS:
        j -= 1
    return text[j] in TERMINAL


def first_chars(text: str, spans: Sequence[tuple[int, int]]) -> list[int]:
    """Per token, the index of its first non-whitespace character in ``text`` (−1: none)."""
    out = []
    for start, end in spans:
        piece = text[start:end]
        stripped = len(piece) - len(piece.lstrip())
        out.append(start + stripped if stripped < len(piece) else -1)
    return out


def group_starts(text: str, firsts: Sequence[int], opens: Opens) -> list[int]:
    """Token indices (within one run without special tokens) where a new group starts.

    A token with text opens a group when its first character opens a unit (``opens``) and is
    not the character the previous token started in (one character split over byte tokens);
    whitespace-only tokens go with the next token that has text, or stay in the current
    group when none follows.
    """
    n = len(firsts)
    opened = [False] * n
    last = -1
    for i, c in enumerate(firsts):
        if c >= 0:
            opened[i] = c != last and opens(text, c)
            last = c
    following = False
    for i in range(n - 1, -1, -1):  # whitespace-only tokens take the next token's answer
        if firsts[i] >= 0:
            following = opened[i]
        else:
            opened[i] = following
    starts, has_text = [0], False
    for i, c in enumerate(firsts):
        if opened[i] and has_text:
            starts.append(i)
            has_text = False
        has_text = has_text or c >= 0
    return starts


def _special_ids(tokenizer: Any) -> set[int]:
    return {int(i) for i in getattr(tokenizer, "all_special_ids", [])}


def _is_special_string(piece: str) -> bool:
    return bool(_SPECIAL.match(piece)) and not _BYTE_PIECE.fullmatch(piece)


def piece_text(pieces: Sequence[str]) -> list[str]:
    """Token strings as the text they stand for: raw byte-level/SentencePiece pieces (no
    literal space anywhere) get ``Ġ``/``Ċ``/``▁``/``<0x0A>`` read as whitespace; decoded
    strings are returned unchanged."""
    if any(" " in p for p in pieces):
        return list(pieces)
    out = []
    for piece in pieces:
        piece = _BYTE_PIECE.sub(lambda m: chr(int(m.group(1), 16)), piece)
        out.append(piece.translate(_BYTE_LEVEL_SPACE))
    return out


def _pieces_layout(pieces: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    texts = piece_text(pieces)
    spans, at = [], 0
    for t in texts:
        spans.append((at, at + len(t)))
        at += len(t)
    return "".join(texts), spans


def _offsets_layout(tokenizer: Any, ids: list[int]) -> tuple[str, list[tuple[int, int]]] | None:
    text = tokenizer.decode(ids, clean_up_tokenization_spaces=False)
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    except (NotImplementedError, TypeError, ValueError):
        return None  # a slow tokenizer has no offsets
    if list(enc["input_ids"]) != ids:
        return None
    return text, [(int(a), int(b)) for a, b in enc["offset_mapping"]]


def _runs(special: Sequence[bool]) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, s in enumerate([*special, True]):
        if not s and start is None:
            start = i
        elif s and start is not None:
            runs.append((start, i))
            start = None
    return runs


def segment(
    ids: Sequence[int],
    strings: Sequence[str] | None,
    level: str,
    *,
    tokenizer: Any = None,
) -> Segmentation:
    """Group tokens into words or sentences (definitions: module docstring).

    Args:
        ids: Token ids ``[n]``.
        strings: Their decoded strings (a result's ``token_strings``); only read without a
            tokenizer.
        level: ``"word"`` or ``"sentence"``.
        tokenizer: A Hugging Face tokenizer (offsets, raw pieces and special ids).

    Returns:
        The groups, which are special tokens, and where positions came from.

    Raises:
        ValueError: Unknown level, or neither a tokenizer nor strings to read.
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS} or a list of (start, end); got {level!r}")
    ids = [int(i) for i in ids]
    if tokenizer is not None:
        specials = _special_ids(tokenizer)
        special = [i in specials for i in ids]
    elif strings is not None:
        special = [_is_special_string(s) for s in strings]
    else:
        raise ValueError("no token strings to group: pass tokenizer= (the model's tokenizer)")
    opens = opens_word if level == "word" else opens_sentence
    bounds = {i + d for i, s in enumerate(special) if s for d in (0, 1)}
    vias: set[str] = set()
    for start, end in _runs(special):
        if tokenizer is None:
            layout = _pieces_layout(list(strings or [])[start:end])
        else:
            layout = _offsets_layout(tokenizer, ids[start:end])
            if layout is None:
                vias.add("pieces")
                raw = tokenizer.convert_ids_to_tokens(ids[start:end])
                layout = _pieces_layout([str(p) for p in raw])
        text, spans = layout
        bounds.update(start + s for s in group_starts(text, first_chars(text, spans), opens))
    edges = sorted(b for b in bounds | {0} if b < len(ids)) + [len(ids)]
    groups = tuple(zip(edges[:-1], edges[1:], strict=True))
    is_special = tuple(b - a == 1 and special[a] for a, b in groups)
    via = "offsets" if tokenizer is not None and not vias else "pieces"
    return Segmentation(groups=groups, special=is_special, via=via)
