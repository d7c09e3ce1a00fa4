"""Result types: ``AttributionResult`` (any method) and ``HetaResult`` (HETA's components)."""

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from heta_lens.config import HetaConfig
from heta_lens.config_flat import config_from_dict

if TYPE_CHECKING:
    from heta_lens.aggregate import AggregatedResult, Level

TARGET_KINDS = ("token", "contrast", "span", "metric")


def _check_ctx(name: str, value: Tensor | None, ctx: int) -> None:
    if value is not None and tuple(value.shape) != (ctx,):
        raise ValueError(f"{name} must have shape [ctx={ctx}]; got {tuple(value.shape)}")


@dataclass(frozen=True, kw_only=True, eq=False)
class AttributionResult:
    """Scores of one attribution: how much each context token drove ``tokens[target]``.

    Its tensors live on the device of the model that produced it, in the dtype heta_lens
    computed in (float32 for a half-precision model); :meth:`load` gives CPU float64 tensors.

    Attributes:
        tokens: All token ids, ``[pos]``.
        target: Index of the explained token; ``ctx`` = positions ``0..target-1``.
        scores: One score per context token, ``[ctx]``.
        method: Registry name of the method that produced it.
        token_strings: Token strings for ``tokens`` (``None`` without a tokenizer).
        target_log_prob: log P(tokens[target] | tokens[:target]).
        diagnostics: Method-specific facts about how the scores were obtained, JSON scalars
            by name (e.g. ReAGent's ``steps`` and ``probes_stopped``); empty for most methods.
            Stored with the row of every eval (``heta-lens eval``) so a baseline's behaviour
            can be checked after the run.
        signed: Whether the scores can be negative (leave-one-out occlusion, ContextCite,
            gradient methods with ``aggregate="sum"``); an unsigned result with a negative
            score is refused. Evals clamp negatives to 0 before normalising.
        target_kind: What was explained (:mod:`heta_lens.targets`): ``"token"`` (the
            default), ``"contrast"``, ``"span"`` or ``"metric"``. For a contrast or a metric
            at position p, ``target`` is p + 1 (the number of context tokens; it may equal
            ``len(tokens)``) and ``target_log_prob`` is NaN.
        target_description: The explained scalar f in words (empty for a plain token).
        target_value: f at the input (for a token target, ``target_log_prob``).

    ``==`` is identity (a dataclass's field-wise ``==`` is undefined on tensors, and NaN
    values would make a result unequal to itself); compare values with :meth:`equals`.
    """

    tokens: Tensor
    target: int
    scores: Tensor
    method: str
    token_strings: tuple[str, ...] | None = None
    target_log_prob: float = float("nan")
    diagnostics: dict[str, float | int | bool | str] = field(default_factory=dict, hash=False)
    signed: bool = False
    target_kind: str = "token"
    target_description: str = ""
    target_value: float = float("nan")

    def __post_init__(self) -> None:
        if self.tokens.ndim != 1:
            raise ValueError(f"tokens must be 1-D; got shape {tuple(self.tokens.shape)}")
        if self.target_kind not in TARGET_KINDS:
            raise ValueError(f"target_kind must be one of {TARGET_KINDS}; got {self.target_kind!r}")
        last = self.tokens.numel() + (self.target_kind in ("contrast", "metric"))
        if not 1 <= self.target < last:
            raise ValueError(f"target {self.target} out of range for {self.tokens.numel()} tokens")
        _check_ctx("scores", self.scores, self.target)
        if not self.signed and bool((self.scores < 0).any()):
            raise ValueError(
                f"{self.method}: negative scores in a result that is not signed (a method "
                "whose scores can be negative returns signed=True)"
            )
        if self.token_strings is not None and len(self.token_strings) != self.tokens.numel():
            raise ValueError("token_strings must have one entry per token")

    @property
    def target_token(self) -> int:
        """The explained token id (a span's first token; the token after the context for a
        contrast or metric, or −1 when the context is the whole input)."""
        return int(self.tokens[self.target]) if self.target < self.tokens.numel() else -1

    def str_tokens(self) -> list[str]:
        """Context token strings (ids as strings when there is no tokenizer)."""
        if self.token_strings is None:
            return [str(int(t)) for t in self.tokens[: self.target]]
        return list(self.token_strings[: self.target])

    def top(self, k: int = 5) -> list[tuple[int, str, float]]:
        """The ``k`` highest-scoring context tokens as ``(position, string, score)``."""
        k = min(k, self.target)
        values, positions = torch.topk(self.scores, k)
        strings = self.str_tokens()
        return [(int(p), strings[int(p)], float(v)) for v, p in zip(values, positions, strict=True)]

    def aggregate(self, level: "Level" = "word", *, tokenizer: Any = None) -> "AggregatedResult":
        """Scores (and HETA components) summed over words, sentences or token ranges.

        See :func:`heta_lens.aggregate.aggregate` (``level``: ``"word"``, ``"sentence"`` or
        ``[(start, end), ...]``; ``tokenizer``: the model's, for its offsets and special
        tokens). Special tokens such as BOS are groups of their own.
        """
        from heta_lens.aggregate import aggregate

        return aggregate(self, level, tokenizer=tokenizer)

    def equals(self, other: object, *, rtol: float = 0.0, atol: float = 0.0) -> bool:
        """Whether ``other`` is a result of the same class with the same fields: tensors of
        the same shape and values (compared on the CPU in float64, within ``rtol``/``atol``,
        NaN equal to NaN), floats equal or both NaN, everything else ``==``. Device and dtype
        do not count (:meth:`load` gives CPU float64 tensors).

        Examples:
            >>> r = AttributionResult(tokens=torch.tensor([1, 2]), target=1,
            ...                       scores=torch.tensor([1.0]), method="m")
            >>> r.equals(from_dict(r.to_dict())), r == from_dict(r.to_dict())
            (True, False)
        """
        if type(other) is not type(self):
            return False
        return all(
            _same(getattr(self, f.name), getattr(other, f.name), rtol, atol) for f in fields(self)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (tensors become lists, the config a dict)."""
        out: dict[str, Any] = {"class": type(self).__name__}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor):
                value = value.tolist()
            elif isinstance(value, HetaConfig):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dict):
                value = dict(value)
            out[f.name] = value
        return out

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_dict` as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @staticmethod
    def load(path: str | Path) -> "AttributionResult":
        """Read a result written by :meth:`save` (float64 tensors)."""
        return from_dict(json.loads(Path(path).read_text()))


@dataclass(frozen=True, kw_only=True, eq=False)
class HetaResult(AttributionResult):
    """A HETA attribution with every component and the exact terms mixed into the score.

    ``scores == gate_term * (β·curvature_term + γ·information_term)`` (``config.mix`` additive;
    the other mixes: :func:`heta_lens.scoring.combine`), where a disabled term
    (ablations) counts as 0 and, if both are disabled, the bracket is 1. ``gate`` is the raw
    gate M_T (sums to 1); ``gate_term`` is what multiplies (sink policy applied, or all ones
    when the gate is disabled). ``curvature``/``information`` are the raw S and I;
    ``*_term`` their normalised forms (``config.normalization``).

    Kept on request (``None`` otherwise; results saved before they existed load with
    ``None``): ``gate_by_head`` ``[layer, head_index, ctx]``, head (l, h)'s term of the raw
    gate (summing over layer and head gives ``gate``; ``HetaConfig(gate_by_head=True)``), and
    ``interactions`` ``[ctx, ctx]``, the curvature's pairwise map X[i, j] = (1/m) Σ_k
    ‖Π_i H Π_j r_{k,j}‖₁ whose diagonal is ``curvature`` (``Exact(interactions=True)``).
    """

    gate: Tensor
    gate_term: Tensor
    curvature: Tensor | None
    information: Tensor | None
    curvature_term: Tensor | None
    information_term: Tensor | None
    config: HetaConfig = field(default_factory=HetaConfig)
    gate_by_head: Tensor | None = None
    interactions: Tensor | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("gate", "gate_term", "curvature", "information"):
            _check_ctx(name, getattr(self, name), self.target)
        for name in ("curvature_term", "information_term"):
            _check_ctx(name, getattr(self, name), self.target)
        if (self.curvature is None) != (self.curvature_term is None):
            raise ValueError("curvature and curvature_term must both be set or both be None")
        if (self.information is None) != (self.information_term is None):
            raise ValueError("information and information_term must both be set or both be None")
        by_head, pairwise = self.gate_by_head, self.interactions
        if by_head is not None and (by_head.ndim != 3 or by_head.shape[-1] != self.target):
            raise ValueError(
                f"gate_by_head must have shape [layer, head_index, ctx={self.target}]; "
                f"got {tuple(by_head.shape)}"
            )
        if pairwise is not None:
            if tuple(pairwise.shape) != (self.target, self.target):
                raise ValueError(
                    f"interactions must have shape [ctx={self.target}, ctx]; "
                    f"got {tuple(pairwise.shape)}"
                )
            if self.curvature is None:
                raise ValueError("interactions need the curvature they are the map of")

    @property
    def gate_by_layer(self) -> Tensor | None:
        """Each layer's share of the raw gate, ``[layer, ctx]`` (``gate_by_head`` summed over
        heads; ``None`` without it)."""
        return None if self.gate_by_head is None else self.gate_by_head.sum(dim=1)

    def top_heads(self, position: int, k: int = 10) -> list[tuple[int, int, float]]:
        """The ``k`` heads carrying most of ``position``'s gate, as ``(layer, head, mass)``,
        mass = ``gate_by_head[layer, head, position]`` (the heads' masses sum to
        ``gate[position]``).

        Raises:
            ValueError: No ``gate_by_head`` (attribute with ``HetaConfig(gate_by_head=True)``),
                or ``position`` outside the context.
        """
        if self.gate_by_head is None:
            raise ValueError(
                "this result has no gate_by_head: attribute with HetaConfig(gate_by_head=True)"
            )
        if not 0 <= position < self.target:
            raise ValueError(f"position {position} is outside the context 0..{self.target - 1}")
        column = self.gate_by_head[:, :, position]
        n_heads = column.shape[1]
        values, flat = torch.topk(column.flatten(), min(k, column.numel()))
        return [
            (int(i) // n_heads, int(i) % n_heads, float(v))
            for v, i in zip(values, flat, strict=True)
        ]


def _same(a: object, b: object, rtol: float, atol: float) -> bool:
    """One field of :meth:`AttributionResult.equals`."""
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        if a.shape != b.shape:
            return False
        x, y = a.detach().cpu().double(), b.detach().cpu().double()
        return bool(torch.allclose(x, y, rtol=rtol, atol=atol, equal_nan=True))
    if isinstance(a, float) and isinstance(b, float):
        if a == b or (a != a and b != b):  # equal (incl. equal infinities) or both NaN
            return True
        return abs(a - b) <= atol + rtol * abs(b)
    return type(a) is type(b) and a == b


def from_dict(data: dict[str, Any]) -> AttributionResult:
    """Inverse of :meth:`AttributionResult.to_dict` (a flat config saved by heta-lens ≤ 0.1 is
    read too: :func:`heta_lens.config_flat.config_from_dict`)."""
    data = dict(data)
    cls = (
        HetaResult if data.pop("class", "AttributionResult") == "HetaResult" else AttributionResult
    )
    known = {f.name for f in fields(cls)}
    if "signed" not in data:  # written before results said so: negative scores mean signed
        data["signed"] = any(value < 0 for value in data.get("scores", []))
    if "target_kind" not in data:  # written before results named their target: a token
        data["target_value"] = data.get("target_log_prob", float("nan"))
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            continue
        if key == "config":
            value = config_from_dict(value)
        elif key == "tokens":
            value = torch.tensor(value, dtype=torch.long)
        elif key == "token_strings" and value is not None:
            value = tuple(value)
        elif isinstance(value, list):
            value = torch.tensor(value, dtype=torch.float64)
        kwargs[key] = value
    return cls(**kwargs)
