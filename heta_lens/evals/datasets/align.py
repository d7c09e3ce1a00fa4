"""Character-to-token alignment: which token positions cover which characters of a text."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from heta_lens.hooks import ModelAdapter


@dataclass(frozen=True, kw_only=True)
class Encoded:
    """Token ids of a text as the model tokenises it, with each token's character span.

    Attributes:
        ids: Token ids exactly as ``adapter.to_tokens(text)`` gives them (BOS included where
            the model prepends one).
        offsets: ``(start, end)`` character span of each token in ``text``; ``(0, 0)`` for a
            prepended BOS (it covers no character).
    """

    ids: tuple[int, ...]
    offsets: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.offsets):
            raise ValueError("ids and offsets must have the same length")

    def __len__(self) -> int:
        return len(self.ids)

    def overlapping(self, start: int, end: int) -> tuple[int, ...]:
        """Positions of the tokens whose span overlaps ``[start, end)``.

        A token ``[a, b)`` overlaps when ``a < end`` and ``start < b`` (empty token spans,
        e.g. BOS, never overlap). Byte-level BPE tokens carry their leading space, so the token
        ``" word"`` overlaps the span of ``word``.
        """
        return tuple(i for i, (a, b) in enumerate(self.offsets) if a < b and a < end and start < b)

    def overlapping_any(self, spans: Sequence[tuple[int, int]]) -> tuple[int, ...]:
        """Sorted positions of the tokens overlapping any of ``spans``."""
        out: set[int] = set()
        for start, end in spans:
            out.update(self.overlapping(start, end))
        return tuple(sorted(out))


def encode_aligned(adapter: ModelAdapter, text: str) -> Encoded:
    """Tokenise ``text`` with character offsets, checked against the model's ``to_tokens``.

    The HF tokenizer is asked for ``return_offsets_mapping`` without special tokens; the model's
    ``to_tokens`` may prepend one BOS token. The ids must then equal ``to_tokens(text)`` with
    that prefix removed, else alignment would be wrong and this raises.

    Raises:
        ValueError: The model has no tokenizer, the tokenizer cannot return offsets (not a
            "fast" tokenizer), or its ids disagree with ``adapter.to_tokens(text)``.
    """
    tokenizer: Any = adapter.tokenizer
    if tokenizer is None:
        raise ValueError("this model has no tokenizer; datasets need one to tokenise text")
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    except NotImplementedError as err:  # slow (Python) tokenizers have no offsets
        raise ValueError(
            f"the tokenizer {type(tokenizer).__name__} cannot return character offsets; "
            "a fast (Rust) tokenizer is needed to align dataset regions"
        ) from err
    ids = [int(i) for i in enc["input_ids"]]
    offsets = [(int(a), int(b)) for a, b in enc["offset_mapping"]]
    ref = [int(t) for t in adapter.to_tokens(text).tolist()]
    extra = len(ref) - len(ids)
    if extra not in (0, 1) or ref[extra:] != ids:
        raise ValueError(
            f"tokenizer ids for {text[:40]!r}... disagree with model.to_tokens "
            f"({len(ids)} vs {len(ref)} tokens); cannot align character spans to tokens"
        )
    return Encoded(ids=tuple(ref), offsets=tuple([(0, 0)] * extra + offsets))
