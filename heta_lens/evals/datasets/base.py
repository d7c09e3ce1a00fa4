"""The dataset instance type, filter statistics and data-directory resolution."""

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from heta_lens.models import default_data_dir

DATA_DIR_HINT = (
    "pass --data-dir (data_dir=) or set HETA_LENS_DATA to the folder holding reagent/, sciq/ "
    "and narrativeqa/"
)


def _positions(name: str, values: Any, n: int, *, low: int) -> tuple[int, ...]:
    out = tuple(values)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in out):
        raise ValueError(f"{name} must hold Python ints; got {out!r}")
    if any(b <= a for a, b in zip(out, out[1:], strict=False)):
        raise ValueError(f"{name} must be strictly increasing; got {out}")
    if out and (out[0] < low or out[-1] >= n):
        raise ValueError(f"{name} must lie in [{low}, {n}); got {out}")
    return out


def _token_ids(values: Any) -> tuple[int, ...]:
    out = tuple(values)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in out):
        raise ValueError("tokens must be non-negative Python ints (token ids)")
    return out


@dataclass(frozen=True, kw_only=True)
class EvalInstance:
    """One evaluation instance: a token sequence and the positions whose prediction is explained.

    Attributes:
        uid: Identifier, unique within its dataset (stable across runs and models).
        dataset: Dataset name (``"longra"``, ``"tellmewhy"``, ``"wikitext"``, ``"curated"``).
        text: The text the tokens encode (prompt plus continuation; without the BOS token).
        tokens: All token ids (prompt + continuation) exactly as the model's
            ``adapter.to_tokens`` gives them, BOS included where the model prepends one.
        targets: Positions whose token is explained (each ``1 <= t < len(tokens)``; the context
            of target ``t`` is ``tokens[:t]``), strictly increasing, at least one.
        regions: Named sets of context token positions (e.g. ``"narrative"``, ``"sciq"``,
            ``"support"``, ``"question"``, ``"antecedent"``, ``"distractor"``), each strictly
            increasing within ``[0, len(tokens))``.
        meta: JSON-serialisable extra information (provenance, predictions, ranks).
    """

    uid: str
    dataset: str
    text: str
    tokens: tuple[int, ...]
    targets: tuple[int, ...]
    regions: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.uid:
            raise ValueError("uid must be a non-empty string")
        if not self.dataset:
            raise ValueError("dataset must be a non-empty string")
        tokens = _token_ids(self.tokens)
        n = len(tokens)
        if n < 2:
            raise ValueError(f"instance {self.uid}: needs at least 2 tokens; got {n}")
        targets = _positions(f"instance {self.uid}: targets", self.targets, n, low=1)
        if not targets:
            raise ValueError(f"instance {self.uid}: needs at least one target")
        regions = {
            str(k): _positions(f"instance {self.uid}: region {k!r}", v, n, low=0)
            for k, v in self.regions.items()
        }
        object.__setattr__(self, "tokens", tokens)
        object.__setattr__(self, "targets", targets)
        object.__setattr__(self, "regions", regions)
        object.__setattr__(self, "meta", dict(self.meta))

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (tuples become lists); inverse of :meth:`from_json`."""
        return {
            "uid": self.uid,
            "dataset": self.dataset,
            "text": self.text,
            "tokens": list(self.tokens),
            "targets": list(self.targets),
            "regions": {k: list(v) for k, v in self.regions.items()},
            "meta": json.loads(json.dumps(dict(self.meta), allow_nan=False)),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "EvalInstance":
        """Rebuild an instance from :meth:`to_json` output.

        Raises:
            ValueError: A field is missing or invalid.
        """
        missing = [k for k in ("uid", "dataset", "text", "tokens", "targets") if k not in data]
        if missing:
            raise ValueError(f"instance record lacks field(s) {missing}")
        regions = data.get("regions") or {}
        return cls(
            uid=str(data["uid"]),
            dataset=str(data["dataset"]),
            text=str(data["text"]),
            tokens=tuple(data["tokens"]),
            targets=tuple(data["targets"]),
            regions={str(k): tuple(v) for k, v in dict(regions).items()},
            meta=dict(data.get("meta") or {}),
        )


@dataclass(frozen=True, kw_only=True)
class FilterStats:
    """How many candidates a model-dependent loader examined and kept, and why others dropped.

    Attributes:
        dataset: Dataset name.
        n_candidates: Candidates examined (all of them unless a ``limit`` stopped the loader).
        n_kept: Candidates kept as instances.
        dropped: Reason -> count for the others (each dropped candidate counted once, under the
            first check it failed).
        options: The loader options that produced these numbers (e.g. ``top_k``, ``limit``).
    """

    dataset: str
    n_candidates: int
    n_kept: int
    dropped: Mapping[str, int] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 <= self.n_kept <= self.n_candidates:
            raise ValueError(f"n_kept={self.n_kept} must lie in [0, {self.n_candidates}]")
        if self.n_kept + sum(self.dropped.values()) != self.n_candidates:
            raise ValueError("kept + dropped counts must add up to n_candidates")
        object.__setattr__(self, "dropped", dict(self.dropped))
        object.__setattr__(self, "options", dict(self.options))

    @property
    def fraction(self) -> float:
        """``n_kept / n_candidates`` (NaN with no candidates)."""
        return self.n_kept / self.n_candidates if self.n_candidates else math.nan

    def describe(self) -> str:
        """E.g. ``"longra: 120 of 573 survive (300 target not a single token, ...)"``."""
        reasons = ", ".join(f"{v} {k}" for k, v in self.dropped.items() if v)
        text = f"{self.dataset}: {self.n_kept} of {self.n_candidates} survive"
        return f"{text} ({reasons})" if reasons else text

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable dict; inverse of :meth:`from_json`."""
        return {
            "dataset": self.dataset,
            "n_candidates": self.n_candidates,
            "n_kept": self.n_kept,
            "dropped": dict(self.dropped),
            "options": dict(self.options),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "FilterStats":
        """Rebuild from :meth:`to_json` output."""
        return cls(
            dataset=str(data["dataset"]),
            n_candidates=int(data["n_candidates"]),
            n_kept=int(data["n_kept"]),
            dropped={str(k): int(v) for k, v in dict(data.get("dropped") or {}).items()},
            options=dict(data.get("options") or {}),
        )


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """``data_dir`` or :func:`heta_lens.models.default_data_dir`, which must exist.

    Raises:
        FileNotFoundError: The directory does not exist (the message names it and the
            ``--data-dir`` option).
    """
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    if not root.is_dir():
        raise FileNotFoundError(f"evaluation data directory {root} does not exist; {DATA_DIR_HINT}")
    return root


def require_file(path: Path, *, what: str) -> Path:
    """``path`` if it is a file.

    Raises:
        FileNotFoundError: It is missing (the message names the path and ``--data-dir``).
    """
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path} does not exist; {DATA_DIR_HINT}")
    return path


def check_limit(limit: int | None) -> None:
    """Raises ValueError unless ``limit`` is ``None`` or a positive int."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of instances or None; got {limit}")
