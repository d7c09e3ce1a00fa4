"""JSON Lines reading (strict, with file:line errors) and atomic writing."""

import json
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from heta_lens.evals.datasets.base import require_file


def read_jsonl(
    path: str | Path, *, required_fields: Sequence[str] = (), what: str = "JSONL file"
) -> list[dict[str, Any]]:
    """Read a JSON Lines file: one JSON object per non-blank line.

    Args:
        path: The file.
        required_fields: Keys every object must carry.
        what: How error messages name the file's role (e.g. ``"LongRA candidates"``).

    Returns:
        The objects in file order (blank lines skipped).

    Raises:
        FileNotFoundError: The file does not exist (the message names the ``--data-dir``
            option).
        ValueError: A line is not valid JSON, not an object, or lacks a required field; the
            message names the file and the 1-based line number.
    """
    file = require_file(Path(path), what=what)
    schema = f"; a {what} holds one JSON object per line"
    if required_fields:
        schema += f" with fields {list(required_fields)}"
    rows: list[dict[str, Any]] = []
    with file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{file}:{number}: malformed JSON ({err.msg}){schema}") from None
            if not isinstance(row, dict):
                raise ValueError(
                    f"{file}:{number}: expected a JSON object, got {type(row).__name__}{schema}"
                )
            missing = [k for k in required_fields if k not in row]
            if missing:
                raise ValueError(f"{file}:{number}: missing required field(s) {missing}{schema}")
            rows.append(row)
    return rows


def write_jsonl(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write ``rows`` as JSON Lines atomically: a temporary file in the same folder, renamed.

    Every row is serialised before anything is written, so an unserialisable row (or any
    error) leaves no file, half-written or otherwise, at ``path``.

    Returns:
        The path written.

    Raises:
        TypeError | ValueError: A row is not JSON-serialisable (NaN/inf are refused).
    """
    target = Path(path)
    lines = [json.dumps(dict(row), ensure_ascii=False, allow_nan=False) + "\n" for row in rows]
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with tmp.open("x", encoding="utf-8") as handle:  # default permissions (umask)
            handle.writelines(lines)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target
