"""EvalInstance / FilterStats validation, strict JSONL reading and atomic writing."""

import json
from pathlib import Path

import pytest

from heta_lens.evals.datasets import EvalInstance, FilterStats, read_jsonl, resolve_data_dir
from heta_lens.evals.datasets.jsonl import write_jsonl


def _instance(**over) -> EvalInstance:
    fields = {
        "uid": "x-0",
        "dataset": "longra",
        "text": "a b c",
        "tokens": (1, 5, 7, 3),
        "targets": (3,),
        "regions": {"antecedent": (1,), "distractor": (2,)},
        "meta": {"category": "family"},
    }
    fields.update(over)
    return EvalInstance(**fields)


def test_instance_round_trips_through_json():
    inst = _instance(tokens=[1, 5, 7, 3], regions={"antecedent": [1]})
    assert inst.tokens == (1, 5, 7, 3) and inst.regions == {"antecedent": (1,)}
    back = EvalInstance.from_json(json.loads(json.dumps(inst.to_json())))
    assert back == inst


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"uid": ""}, "uid"),
        ({"tokens": (1,), "targets": (1,)}, "at least 2 tokens"),
        ({"targets": ()}, "at least one target"),
        ({"targets": (0,)}, r"targets must lie in \[1, 4\)"),
        ({"targets": (4,)}, r"targets must lie in \[1, 4\)"),
        ({"targets": (3, 2)}, "strictly increasing"),
        ({"regions": {"support": (0, 4)}}, r"region 'support' must lie in \[0, 4\)"),
        ({"tokens": (1, -2, 3)}, "non-negative"),
    ],
)
def test_instance_validation(over, message):
    with pytest.raises(ValueError, match=message):
        _instance(**over)


def test_instance_meta_must_be_json():
    with pytest.raises(ValueError):
        _instance(meta={"x": float("nan")}).to_json()


def test_filter_stats_counts_add_up():
    stats = FilterStats(dataset="longra", n_candidates=5, n_kept=2, dropped={"a": 2, "b": 1})
    assert stats.describe() == "longra: 2 of 5 survive (2 a, 1 b)"
    assert FilterStats.from_json(stats.to_json()) == stats
    with pytest.raises(ValueError, match="add up"):
        FilterStats(dataset="longra", n_candidates=5, n_kept=2, dropped={"a": 1})


def test_read_jsonl_names_file_and_line(tmp_path: Path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1, "b": 2}\n\n{"a": 1, "b": 2}\n{"a": 1,\n')
    with pytest.raises(ValueError, match=rf"{path}:4: malformed JSON"):
        read_jsonl(path)
    path.write_text('{"a": 1, "b": 2}\n{"a": 1}\n')
    with pytest.raises(ValueError, match=rf"{path}:2: missing required field\(s\) \['b'\]"):
        read_jsonl(path, required_fields=("a", "b"))
    path.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(ValueError, match=rf"{path}:2: expected a JSON object"):
        read_jsonl(path)
    path.write_text('{"a": 1}\n\n{"a": 2}\n')
    assert read_jsonl(path, required_fields=("a",)) == [{"a": 1}, {"a": 2}]


def test_missing_paths_name_the_data_dir_option(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"--data-dir") as err:
        read_jsonl(tmp_path / "absent.jsonl")
    assert str(tmp_path / "absent.jsonl") in str(err.value)
    with pytest.raises(FileNotFoundError, match=r"--data-dir") as err:
        resolve_data_dir(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value)
    assert resolve_data_dir(tmp_path) == tmp_path


def test_write_jsonl_is_atomic(tmp_path: Path):
    path = tmp_path / "sub" / "out.jsonl"
    write_jsonl(path, [{"a": 1}, {"b": [1, 2]}])
    assert read_jsonl(path) == [{"a": 1}, {"b": [1, 2]}]
    with pytest.raises(ValueError):
        write_jsonl(path, [{"a": 2}, {"bad": float("nan")}])
    assert read_jsonl(path) == [{"a": 1}, {"b": [1, 2]}]  # old content untouched
    fresh = tmp_path / "fresh.jsonl"
    with pytest.raises(TypeError):
        write_jsonl(fresh, [{"a": object()}])
    assert not fresh.exists()
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.jsonl"]  # no temp files left
