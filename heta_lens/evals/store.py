"""Append-only JSONL result store that survives ``kill -9`` and resumes where it stopped.

One line per (instance, target, method). Lines are written whole and flushed one at a time,
so a killed run can lose at most the line being written; :func:`read_rows` drops such a
truncated last line (and :func:`repair` cuts it off the file) instead of failing, and the
rerun recomputes exactly that row. Rows are deterministic under the run's seed, so a resumed
run ends with the same table as an uninterrupted one.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from heta_lens.jsonl import RowWriter, complete_lines, repair

ROWS_GLOB = "rows*.jsonl"


def row_key(uid: str, target: int, method: str) -> str:
    """The identity of one row: ``uid|target|method``."""
    return f"{uid}|{target}|{method}"


def _parse(path: Path) -> Iterator[dict[str, Any]]:
    for number, row in complete_lines(path):
        if "key" not in row:
            raise ValueError(f"{path}:{number}: result row without a 'key' field")
        yield row


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


__all__ = ["ROWS_GLOB", "RowWriter", "done_keys", "read_rows", "repair", "row_key"]
