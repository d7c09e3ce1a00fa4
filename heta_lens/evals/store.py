"""Append-only JSONL result store that survives ``kill -9`` and resumes where it stopped.

One line per (instance, target, method). Lines are written whole and flushed one at a time,
so a killed run can lose at most the line being written; :func:`read_rows` drops such a
truncated last line (and :func:`repair` cuts it off the file) instead of failing, and the
rerun recomputes exactly that row. Rows are deterministic under the run's seed, so a resumed
run ends with the same table as an uninterrupted one.
"""

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

ROWS_GLOB = "rows*.jsonl"


def row_key(uid: str, target: int, method: str) -> str:
    """The identity of one row: ``uid|target|method``."""
    return f"{uid}|{target}|{method}"


def repair(path: Path) -> int:
    """Cut a truncated last line (no trailing newline) off ``path``; return bytes removed."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    with path.open("r+b") as handle:
        handle.truncate(keep)
    return len(data) - keep


def _parse(path: Path) -> Iterator[dict[str, Any]]:
    lines = path.read_text(encoding="utf-8").split("\n")
    complete, tail = lines[:-1], lines[-1]
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: malformed result row ({err.msg})") from None
        if not isinstance(row, dict) or "key" not in row:
            raise ValueError(f"{path}:{number}: result row without a 'key' field")
        yield row
    del tail  # a line without its newline was cut by a kill: recomputed on resume


def read_rows(directory: Path) -> list[dict[str, Any]]:
    """Every complete row of every ``rows*.jsonl`` in ``directory``, one per key.

    A key written twice (a row recomputed after a kill cut its line) holds the same values
    both times (rows are deterministic), so duplicates collapse to one.

    Raises:
        ValueError: A complete line that is not a JSON object with a ``key`` (file:line named).
    """
    rows: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob(ROWS_GLOB)):
        for row in _parse(path):
            rows[row["key"]] = row
    return list(rows.values())


def done_keys(directory: Path) -> set[str]:
    """Keys already written to ``directory``."""
    return {row["key"] for row in read_rows(directory)}


class RowWriter:
    """Appends rows to one JSONL file, one flushed line at a time.

    Args:
        path: The file; a truncated last line left by a killed run is cut off first.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        repair(path)
        self.path = path
        self._handle = path.open("a", encoding="utf-8")

    def write(self, row: dict[str, Any]) -> None:
        """Append ``row`` as one line and flush it to the OS (survives a killed process)."""
        self._handle.write(json.dumps(row, separators=(",", ":")) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def write_all(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self.write(row)

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> "RowWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
