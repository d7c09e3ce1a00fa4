"""Append-only JSONL files that survive ``kill -9``: one flushed line per record.

Lines are written whole and flushed (and fsynced) one at a time, so a killed process loses at
most the line it was writing. That line has no trailing newline: :func:`complete_lines` leaves
it out and :func:`repair` cuts it off the file, so a rerun recomputes exactly that record.
Used by the eval rows (:mod:`heta_lens.evals.store`) and by many-prompt attribution
(:mod:`heta_lens.batch`).
"""

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


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


def complete_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every complete, non-blank line of ``path``.

    A last line without its newline (cut by a kill) is left out.

    Raises:
        ValueError: A complete line that is not a JSON object (file and line named).
    """
    lines = path.read_text(encoding="utf-8").split("\n")
    for number, line in enumerate(lines[:-1], start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: malformed JSON line ({err.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{number}: expected a JSON object")
        yield number, row


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
        """Append every row of ``rows`` (:meth:`write` each)."""
        for row in rows:
            self.write(row)

    def close(self) -> None:
        """Close the file."""
        self._handle.close()

    def __enter__(self) -> "RowWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
