"""The JSONL store: truncated-line repair, last-write-wins, errors with file:line."""

import json

import pytest

from heta_lens.evals.store import RowWriter, done_keys, read_rows, repair, row_key


def test_writer_appends_whole_lines_and_reads_back(tmp_path):
    with RowWriter(tmp_path / "rows.jsonl") as writer:
        writer.write({"key": row_key("a", 3, "m"), "x": 1})
        writer.write({"key": row_key("b", 4, "m"), "x": 2})
    assert done_keys(tmp_path) == {"a|3|m", "b|4|m"}
    assert (tmp_path / "rows.jsonl").read_text().count("\n") == 2


def test_truncated_last_line_is_dropped_and_repaired(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"key": "a|1|m"}) + "\n" + '{"key": "b|1|m", "x"')
    assert [r["key"] for r in read_rows(tmp_path)] == ["a|1|m"]
    removed = repair(path)
    assert removed == len('{"key": "b|1|m", "x"')
    assert path.read_text() == json.dumps({"key": "a|1|m"}) + "\n"
    with RowWriter(path) as writer:  # appending after a kill starts on a fresh line
        writer.write({"key": "b|1|m"})
    assert done_keys(tmp_path) == {"a|1|m", "b|1|m"}


def test_rows_from_all_part_files_one_row_per_key(tmp_path):
    (tmp_path / "rows.jsonl").write_text(json.dumps({"key": "a|1|m", "v": 1}) + "\n")
    (tmp_path / "rows-1.jsonl").write_text(
        json.dumps({"key": "a|1|m", "v": 1}) + "\n" + json.dumps({"key": "b|1|m"}) + "\n"
    )
    rows = read_rows(tmp_path)
    assert sorted(r["key"] for r in rows) == ["a|1|m", "b|1|m"]


def test_malformed_complete_line_names_file_and_line(tmp_path):
    (tmp_path / "rows.jsonl").write_text('{"key": "a|1|m"}\nnot json\n')
    with pytest.raises(ValueError, match=r"rows.jsonl:2: malformed"):
        read_rows(tmp_path)
    (tmp_path / "rows.jsonl").write_text('{"nokey": 1}\n')
    with pytest.raises(ValueError, match=r"rows.jsonl:1: result row without a 'key'"):
        read_rows(tmp_path)
