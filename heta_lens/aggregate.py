"""Word-, sentence- or span-level attributions: token scores summed over groups of tokens.

:meth:`heta_lens.AttributionResult.aggregate` returns an :class:`AggregatedResult`. Scores
(and, for HETA, every component) are summed in float64 over each group's tokens, so totals are
preserved; grouping rules are those of :mod:`heta_lens.words`. Only the context (positions
``0..target-1``, the tokens that have scores) is grouped: a word the target cuts in two ends
at the target.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from heta_lens.result import AttributionResult, HetaResult, from_dict
from heta_lens.words import LEVELS, Segmentation, segment

SUMMED = ("gate", "gate_term", "curvature", "information", "curvature_term", "information_term")
"""HETA components summed per group (those a result has; ablations lack some)."""

Level = str | Sequence[tuple[int, int]]
"""``"word"``, ``"sentence"`` or custom token ranges ``[(start, end), ...]``."""


@dataclass(frozen=True, kw_only=True)
class AggregatedResult:
    """An attribution summed over groups of context tokens (words, sentences or spans).

    ``scores[g]`` is the sum of ``source.scores`` over ``groups[g]``, so ``scores.sum()``
    equals ``source.scores.sum()`` up to float64 rounding. For a :class:`HetaResult`,
    ``components`` holds the sums of ``gate``, ``gate_term``, ``curvature``, ``information``
    and the ``*_term`` fields it has. (The product rule of a token's score does not carry over
    to sums: a group's score is not its summed gate term times its summed bracket.)

    Attributes:
        source: The token-level result.
        level: ``"word"``, ``"sentence"`` or ``"custom"``.
        groups: Half-open token ranges ``(start, end)`` covering ``0..source.target`` in order,
            each token in exactly one.
        strings: The text of each group (decoded with the tokenizer when one was given).
        special: Whether each group is a special token (BOS, chat markers): always a group
            of its own, never merged into a word.
        scores: Summed scores, float64, ``[group]``.
        components: Summed HETA components by name, float64 ``[group]`` each.
        via: Where token positions in the text came from: ``"offsets"`` (the tokenizer's),
            ``"pieces"`` (token strings) or ``"custom"``.
    """

    source: AttributionResult
    level: str
    groups: tuple[tuple[int, int], ...]
    strings: tuple[str, ...]
    special: tuple[bool, ...]
    scores: Float[Tensor, " group"]
    components: dict[str, Tensor] = field(default_factory=dict, hash=False)
    via: str = "pieces"

    def __post_init__(self) -> None:
        n = len(self.groups)
        starts, ends = [a for a, _ in self.groups], [b for _, b in self.groups]
        if not n or starts[0] != 0 or ends[-1] != self.source.target:
            raise ValueError(f"groups must cover the context 0..{self.source.target}")
        if starts[1:] != ends[:-1] or any(a >= b for a, b in self.groups):
            raise ValueError("groups must be non-empty, in order and contiguous")
        if len(self.strings) != n or len(self.special) != n:
            raise ValueError("strings and special must have one entry per group")
        for name, value in {"scores": self.scores, **self.components}.items():
            if tuple(value.shape) != (n,):
                raise ValueError(f"{name} must have shape [group={n}]; got {tuple(value.shape)}")

    @property
    def token_group(self) -> Int[Tensor, " ctx"]:
        """For each context token, the index of its group."""
        sizes = torch.tensor([b - a for a, b in self.groups])
        return torch.repeat_interleave(torch.arange(len(self.groups)), sizes)

    def top(self, k: int = 5) -> list[tuple[int, str, float]]:
        """The ``k`` highest-scoring groups as ``(group index, string, score)``."""
        values, index = torch.topk(self.scores, min(k, len(self.groups)))
        return [
            (int(g), self.strings[int(g)], float(v)) for v, g in zip(values, index, strict=True)
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (the source result nested as its own ``to_dict``)."""
        return {
            "class": type(self).__name__,
            "source": self.source.to_dict(),
            "level": self.level,
            "groups": [list(g) for g in self.groups],
            "strings": list(self.strings),
            "special": list(self.special),
            "scores": self.scores.tolist(),
            "components": {k: v.tolist() for k, v in self.components.items()},
            "via": self.via,
        }

    @staticmethod
    def from_dict(data: dict[str, Any]) -> "AggregatedResult":
        """Inverse of :meth:`to_dict`."""
        return AggregatedResult(
            source=from_dict(data["source"]),
            level=data["level"],
            groups=tuple((int(a), int(b)) for a, b in data["groups"]),
            strings=tuple(data["strings"]),
            special=tuple(bool(s) for s in data["special"]),
            scores=torch.tensor(data["scores"], dtype=torch.float64),
            components={
                k: torch.tensor(v, dtype=torch.float64) for k, v in data["components"].items()
            },
            via=data.get("via", "pieces"),
        )

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_dict` as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @staticmethod
    def load(path: str | Path) -> "AggregatedResult":
        """Read a result written by :meth:`save`."""
        return AggregatedResult.from_dict(json.loads(Path(path).read_text()))


def _custom(spans: Sequence[tuple[int, int]], ctx: int) -> Segmentation:
    """Caller's ranges, checked; tokens they leave out become groups of one."""
    edges, last = [0], 0
    for span in spans:
        if len(span) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) for x in span):
            raise TypeError(f"a custom group must be a (start, end) pair of ints; got {span!r}")
        start, end = span
        if not 0 <= start < end <= ctx:
            raise ValueError(f"group {span} must satisfy 0 <= start < end <= ctx={ctx}")
        if start < last:
            raise ValueError(f"group {span} overlaps or precedes the one before it")
        edges += list(range(last + 1, start + 1)) + [end]
        last = end
    edges += list(range(last + 1, ctx + 1))
    groups = tuple(zip(edges[:-1], edges[1:], strict=True))
    return Segmentation(groups=groups, special=(False,) * len(groups), via="custom")


def aggregate(
    result: AttributionResult, level: Level = "word", *, tokenizer: Any = None
) -> AggregatedResult:
    """Sum ``result``'s scores and components over words, sentences or given token ranges.

    Args:
        result: A token-level result.
        level: ``"word"``, ``"sentence"`` (definitions: :mod:`heta_lens.words`) or a list of
            ``(start, end)`` context token ranges (in order, not overlapping; tokens outside
            them become groups of one).
        tokenizer: The model's tokenizer (``model.tokenizer``): its offsets place tokens in the
            text, its special ids mark BOS & co, and group strings are decoded with it.
            Without it, the result's ``token_strings`` are read (leading-space, ``Ġ`` and
            ``▁`` conventions).

    Returns:
        The grouped result.

    Raises:
        ValueError: Unknown level, bad ranges, or no tokenizer and no token strings.
        TypeError: A range that is not a pair of ints.

    Examples:
        >>> import torch
        >>> r = AttributionResult(tokens=torch.tensor([0, 1, 2, 3]), target=3,
        ...     scores=torch.tensor([0.5, 0.25, 1.0]), method="toy",
        ...     token_strings=("The", " Eiff", "el", " Tower"))
        >>> agg = aggregate(r, "word")
        >>> agg.groups, agg.strings, agg.scores.tolist()
        (((0, 1), (1, 3)), ('The', ' Eiffel'), [0.5, 1.25])
    """
    ctx = result.target
    ids = [int(t) for t in result.tokens[:ctx]]
    strings = None if result.token_strings is None else result.token_strings[:ctx]
    if isinstance(level, str):
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS} or a list of (start, end) ranges")
        seg = segment(ids, strings, level, tokenizer=tokenizer)
    else:
        seg = _custom(level, ctx)
    index = torch.repeat_interleave(
        torch.arange(len(seg.groups)), torch.tensor([b - a for a, b in seg.groups])
    )

    def summed(values: Tensor) -> Tensor:
        out = torch.zeros(len(seg.groups), dtype=torch.float64)
        return out.index_add_(0, index, values.detach().to("cpu", torch.float64))

    parts: dict[str, Tensor] = {}
    if isinstance(result, HetaResult):
        for name in SUMMED:
            value = getattr(result, name)
            if value is not None:
                parts[name] = summed(value)
    return AggregatedResult(
        source=result,
        level=level if isinstance(level, str) else "custom",
        groups=seg.groups,
        strings=tuple(_group_string(ids, strings, a, b, tokenizer) for a, b in seg.groups),
        special=seg.special,
        scores=summed(result.scores),
        components=parts,
        via=seg.via,
    )


def _group_string(
    ids: list[int], strings: Sequence[str] | None, a: int, b: int, tokenizer: Any
) -> str:
    if tokenizer is not None:
        return str(tokenizer.decode(ids[a:b], clean_up_tokenization_spaces=False))
    if strings is not None:
        return "".join(strings[a:b])
    return " ".join(str(i) for i in ids[a:b])
