"""Many prompts in one run: one attribution per record, streamed to a resumable JSONL file.

:func:`attribute_many` runs every record (:mod:`heta_lens.records`) through the method
registry, in order, and appends one line per record to ``out`` as soon as it is computed
(flushed and fsynced: :mod:`heta_lens.jsonl`). A rerun with the same ``out`` reads the
complete lines back instead of recomputing them, cuts off a line a kill left half-written and
carries on, so a killed and resumed run ends with the same file as an uninterrupted one
(records are processed in input order and methods are deterministic under their seed).

Output lines (one JSON object each; Python's ``json``, so an undefined value is ``NaN``)::

    {"key": "q1",                      # the record's id, or its content hash
     "record": {...},                  # the input record (Record.to_json)
     "method": "heta", "config": {...},  # what computed it (config as a dict; null if none)
     "result": {...},                  # AttributionResult/HetaResult.to_dict()
     "aggregate": {...}}               # AggregatedResult.to_dict(), only with aggregate=

:func:`read_results` gives the results back by key (``from_dict`` of each ``"result"``).
"""

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from torch import nn
from tqdm.auto import tqdm

from heta_lens.config import HetaConfig
from heta_lens.hooks import ModelAdapter
from heta_lens.jsonl import RowWriter, complete_lines
from heta_lens.records import Record, as_record, record_request
from heta_lens.registry import MethodSpec, get_method
from heta_lens.result import AttributionResult, from_dict
from heta_lens.words import LEVELS


def config_json(config: Any) -> Any:
    """A method's config as plain JSON (``None`` when it has none)."""
    if isinstance(config, HetaConfig):
        value: Any = config.to_dict()
    elif is_dataclass(config) and not isinstance(config, type):
        value = asdict(config)
    else:
        value = None if config is None else repr(config)
    return json.loads(json.dumps(value))


def read_lines(path: str | Path) -> dict[str, dict[str, Any]]:
    """The complete output lines of ``path`` by key (a half-written last line left out).

    Raises:
        ValueError: A complete line that is not a JSON object with a ``key``.
    """
    lines: dict[str, dict[str, Any]] = {}
    path = Path(path)
    if not path.exists():
        return lines
    for number, line in complete_lines(path):
        if "key" not in line:
            raise ValueError(f"{path}:{number}: output line without a 'key' field")
        lines.setdefault(str(line["key"]), line)
    return lines


def read_results(path: str | Path) -> dict[str, AttributionResult]:
    """The results of an :func:`attribute_many` output file, by record key, in file order."""
    return {key: from_dict(line["result"]) for key, line in read_lines(path).items()}


def _plan(
    records: list[Record], spec: MethodSpec, config: Any
) -> list[tuple[Record, MethodSpec, Any]]:
    plan = []
    seen: dict[str, int] = {}
    for i, record in enumerate(records):
        if record.key in seen:
            raise ValueError(
                f"records {seen[record.key]} and {i} have the same key {record.key!r} "
                "(give them distinct ids)"
            )
        seen[record.key] = i
        if record.method is None or record.method == spec.name:
            plan.append((record, spec, config))
        else:
            plan.append((record, get_method(record.method), None))
    return plan


def _check_done(
    out: Path, record: Record, line: dict[str, Any], spec: MethodSpec, config: Any
) -> None:
    want = config_json(spec.default_config if config is None else config)
    if line.get("method") != spec.name or line.get("config") != want:
        raise ValueError(
            f"{out} holds record {record.key!r} computed with another method or config "
            f"({line.get('method')!r}); resume with the same options or choose another output"
        )
    stored = {k: v for k, v in line.get("record", {}).items() if k != "meta"}
    if stored != {k: v for k, v in record.to_json().items() if k != "meta"}:
        raise ValueError(
            f"{out} holds record {record.key!r} with other content ({stored}); give the changed "
            "record a new id or choose another output"
        )


def attribute_many(
    model: nn.Module,
    records: Iterable[Record | Mapping[str, Any]],
    *,
    method: str | MethodSpec = "heta",
    config: Any = None,
    out: str | Path | None = None,
    aggregate: str | None = None,
    progress: bool = True,
) -> Iterator[AttributionResult]:
    """Attribute every record, in order, streaming one line per record to ``out``.

    Records, methods and an existing ``out`` are checked now; the attributions run as the
    returned iterator is consumed (``list(attribute_many(...))`` runs them all).

    Args:
        model: A ``HookedTransformer`` or ``TransformerBridge`` with a tokenizer.
        records: :class:`~heta_lens.records.Record` objects or JSON-like mappings (fields:
            :mod:`heta_lens.records`; :func:`~heta_lens.records.read_records` reads a file).
        method: Registry name or :class:`MethodSpec` (e.g. ``get_method("heta").with_preset(
            "fast")``) for records that do not name their own.
        config: Its config (``None``: the method's default).
        out: JSONL output; created, or resumed when it exists (lines: module docstring).
        aggregate: ``"word"`` or ``"sentence"``: also store
            :meth:`~heta_lens.AttributionResult.aggregate` with the model's tokenizer.
        progress: A tqdm bar over records (already-done records counted from the start).

    Returns:
        An iterator of one result per record, in input order (done records read from ``out``).

    Raises:
        ValueError: Bad record, two records with one key, unknown method or level, or ``out``
            holds a record's key computed with another method or config or for other content.
    """
    plan, path, done = plan_many(
        records, method=method, config=config, out=out, aggregate=aggregate
    )
    return _run(model, plan, path, done, aggregate, progress)


Plan = list[tuple[Record, MethodSpec, Any]]
"""Each record with the method and config that compute it."""


def plan_many(
    records: Iterable[Record | Mapping[str, Any]],
    *,
    method: str | MethodSpec,
    config: Any,
    out: str | Path | None,
    aggregate: str | None,
) -> tuple[Plan, Path | None, dict[str, dict[str, Any]]]:
    """Check the arguments of :func:`attribute_many`: the plan, the output path, done lines.

    Raises:
        ValueError: As :func:`attribute_many`.
    """
    spec = get_method(method) if isinstance(method, str) else method
    if aggregate is not None and aggregate not in LEVELS:
        raise ValueError(f"aggregate must be one of {LEVELS}; got {aggregate!r}")
    recs = []
    for i, item in enumerate(records):
        try:
            recs.append(as_record(item))
        except (ValueError, TypeError) as err:
            raise type(err)(f"record {i}: {err}") from None
    plan = _plan(recs, spec, config)
    path = None if out is None else Path(out)
    done = {} if path is None else read_lines(path)
    if path is not None:
        for record, spec_r, config_r in plan:
            if record.key in done:
                _check_done(path, record, done[record.key], spec_r, config_r)
    return plan, path, done


def record_line(
    model: nn.Module, item: tuple[Record, MethodSpec, Any], *, aggregate: str | None
) -> tuple[AttributionResult, dict[str, Any]]:
    """Attribute one planned record: its result and its output line (module docstring).

    Raises:
        ValueError: The record's request does not fit the model (the record's key named).
    """
    record, spec, config = item
    try:
        tokens, target = record_request(model, record)
        result = spec(model, tokens, target=target, config=config)
    except (ValueError, TypeError) as err:
        raise type(err)(f"record {record.key!r}: {err}") from None
    line: dict[str, Any] = {
        "key": record.key,
        "record": record.to_json(),
        "method": spec.name,
        "config": config_json(spec.default_config if config is None else config),
        "result": result.to_dict(),
    }
    if aggregate is not None:
        tokenizer = ModelAdapter(model).tokenizer
        line["aggregate"] = result.aggregate(aggregate, tokenizer=tokenizer).to_dict()
    return result, line


def _run(
    model: nn.Module,
    plan: Plan,
    path: Path | None,
    done: dict[str, dict[str, Any]],
    aggregate: str | None,
    progress: bool,
) -> Iterator[AttributionResult]:
    initial = sum(record.key in done for record, _, _ in plan)
    bar = tqdm(
        total=len(plan), initial=initial, desc="records", unit="record", disable=not progress
    )
    writer = None if path is None else RowWriter(path)
    try:
        for item in plan:
            if item[0].key in done:
                yield from_dict(done[item[0].key]["result"])
                continue
            result, line = record_line(model, item, aggregate=aggregate)
            if writer is not None:
                writer.write(line)
            bar.update(1)
            yield result
    finally:
        bar.close()
        if writer is not None:
            writer.close()
