"""Input records of many-prompt attribution (:func:`heta_lens.attribute_many`).

One record is one prompt and one thing to explain about it. In a JSONL file, one object per
line::

    {"id": "q1", "text": "The capital of France is", "target_text": " Paris"}
    {"id": "q2", "text": "When Mary and John went to the store, John gave a drink to",
     "target_text": " Mary", "contrast": " John"}
    {"text": "The tallest tower in Paris is the", "span": " Eiffel Tower", "method": "occlusion"}

Fields (all but ``text`` optional; the target fields mean what the ``heta-lens attribute``
flags of the same name mean):

- ``id``: string or integer naming the record in the output; default: a hash of its content.
- ``text``: the prompt.
- ``target_text``: append it and explain its token (it must be one token; use ``span`` for
  longer text). With ``contrast``: the answer.
- ``contrast``: the foil; explain logit(answer) − logit(foil) at the last prompt position,
  the answer being ``target_text`` or, without it, the greedy next token.
- ``span``: explain Σ log P(continuation tokens | prompt), teacher forced.
- ``target_index``: explain token N of the tokenized prompt (BOS counts).
- ``target``: a target object as ``{"kind": "token" | "contrast" | "span", <its fields>}``,
  e.g. ``{"kind": "contrast", "answer": " Mary", "foil": " John", "position": -1, "kl":
  "vocab"}`` (all of :class:`~heta_lens.Contrast`'s options).
- none of these: explain the model's greedy next token.
- ``method``: a registered method run with its default config for this record (default: the
  run's method and config).
- ``meta``: anything JSON, copied to the output line untouched (not part of the hash).

From Python a record can also carry any target object (``Token``, ``Contrast``, ``Span``,
``Metric``) as ``target``; a ``Metric`` record needs an ``id`` (its function has no content to
hash).
"""

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from heta_lens.generation import append_target_text, greedy_generate
from heta_lens.hooks import ModelAdapter
from heta_lens.targets import Contrast, Metric, Span, TargetLike, Token

JSON_FIELDS = (
    "id",
    "text",
    "target_text",
    "contrast",
    "span",
    "target_index",
    "target",
    "method",
    "meta",
)
_TARGET_TYPES = {"token": Token, "contrast": Contrast, "span": Span}


@dataclass(frozen=True, kw_only=True)
class Record:
    """One prompt and what to explain about it (fields: module docstring)."""

    text: str
    id: str | int | None = None
    target: TargetLike = None
    target_text: str | None = None
    contrast: str | None = None
    span: str | None = None
    target_index: int | None = None
    method: str | None = None
    meta: Any = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text:
            raise ValueError(f"record text must be a non-empty string; got {self.text!r}")
        if self.id is not None and (
            isinstance(self.id, bool) or not isinstance(self.id, str | int)
        ):
            raise TypeError(f"record id must be a string or an integer; got {self.id!r}")
        for name in ("target_text", "contrast", "span", "method"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"record {name} must be a non-empty string; got {value!r}")
        index = self.target_index
        if index is not None and (isinstance(index, bool) or not isinstance(index, int)):
            raise TypeError(f"record target_index must be an integer; got {index!r}")
        given = [n for n in ("target_text", "span", "target_index") if getattr(self, n) is not None]
        if self.contrast is not None and (self.span is not None or index is not None):
            raise ValueError("contrast takes its answer from target_text (or the greedy token)")
        if len(given) > 1:
            raise ValueError(f"a record explains one target; it gives {' and '.join(given)}")
        if self.target is not None and (given or self.contrast is not None):
            raise ValueError(f"a record with a target object cannot also give {given}")
        if isinstance(self.target, Metric) and self.id is None:
            raise ValueError("a record with a Metric target needs an id")

    @staticmethod
    def from_json(data: object) -> "Record":
        """A record from a JSON object (fields: module docstring).

        Raises:
            ValueError | TypeError: Not an object, an unknown field, or a bad value.
        """
        if not isinstance(data, dict):
            raise TypeError(f"a record must be a JSON object; got {type(data).__name__}")
        unknown = sorted(set(data) - set(JSON_FIELDS))
        if unknown:
            raise ValueError(f"unknown record field(s) {unknown}; valid: {', '.join(JSON_FIELDS)}")
        data = dict(data)
        if isinstance(data.get("target"), dict):
            data["target"] = _target_from_json(data["target"])
        elif data.get("target") is not None:
            raise TypeError('record target must be an object {"kind": ..., ...}')
        return Record(**data)

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON object (a target object as ``{"kind": ..., fields}``)."""
        out: dict[str, Any] = {}
        for name in JSON_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = _target_json(value) if name == "target" else value
        return json.loads(json.dumps(out))

    @property
    def key(self) -> str:
        """``str(id)``, or ``"sha256:"`` + 16 hex digits of the record's content (``meta``
        left out) without one."""
        if self.id is not None:
            return str(self.id)
        content = {k: v for k, v in self.to_json().items() if k != "meta"}
        text = json.dumps(content, sort_keys=True, ensure_ascii=False)
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def _target_json(target: int | Token | Contrast | Span | Metric) -> dict[str, Any]:
    if isinstance(target, int):
        return {"kind": "token", "index": target}
    if isinstance(target, Metric):
        fields = {"hook_name": target.hook_name, "position": target.position}
        return {"kind": "metric", **fields, "label": target.label}
    data = asdict(target)
    if isinstance(target, Span) and isinstance(target.continuation, tuple):
        data["continuation"] = list(target.continuation)
    return {"kind": type(target).__name__.lower(), **data}


def _target_from_json(data: dict[str, Any]) -> Token | Contrast | Span:
    fields = dict(data)
    kind = fields.pop("kind", None)
    if kind == "metric":
        raise ValueError("a Metric target is Python-only (its function is not JSON)")
    if kind not in _TARGET_TYPES:
        raise ValueError(f"target kind must be one of {sorted(_TARGET_TYPES)}; got {kind!r}")
    try:
        return _TARGET_TYPES[kind](**fields)
    except TypeError as err:
        raise ValueError(f"bad {kind} target fields {sorted(fields)}: {err}") from None


def as_record(item: object) -> Record:
    """A :class:`Record` as is, or one built from a JSON-like mapping."""
    return item if isinstance(item, Record) else Record.from_json(item)


def read_records(path: str | Path) -> list[Record]:
    """Every record of a JSONL file (blank lines skipped).

    Raises:
        ValueError | TypeError: A line that is not a valid record (file and line named).
    """
    path = Path(path)
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(Record.from_json(json.loads(line)))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: malformed JSON ({err.msg})") from None
        except (ValueError, TypeError) as err:
            raise type(err)(f"{path}:{number}: {err}") from None
    return out


def record_request(model: nn.Module, record: Record) -> tuple[Tensor | str, TargetLike]:
    """The ``(tokens, target)`` a record asks for (the rules of ``heta-lens attribute``).

    Raises:
        ValueError: A ``target_text`` of more than one token, or as the target functions.
    """
    if record.target is not None:
        return record.text, record.target
    if record.contrast is not None:
        answer: int | str | None = record.target_text
        if answer is None:
            ids, _ = greedy_generate(model, record.text, max_new_tokens=1)
            answer = int(ids[-1])
        return record.text, Contrast(answer, record.contrast)
    if record.span is not None:
        return record.text, Span(record.span)
    if record.target_text is not None:
        full, positions = append_target_text(model, record.text, record.target_text)
        if len(positions) != 1:
            raise ValueError(
                f"target_text {record.target_text!r} is {len(positions)} tokens; a record "
                "explains one: give one token, or use span for the whole text"
            )
        return full, Token(positions[0])
    if record.target_index is not None:
        return ModelAdapter(model).to_tokens(record.text), record.target_index
    ids, positions = greedy_generate(model, record.text, max_new_tokens=1)
    return ids, positions[0]
