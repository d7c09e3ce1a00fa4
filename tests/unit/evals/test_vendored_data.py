"""The evaluation data shipped with the package: the default, documented, and equivalent to the
full source files it was cut from.

The digests below were computed (2026-12-03) by the same functions on the ORIGINAL files in
``../shared/data`` (full NarrativeQA / SciQ / LongRA files, every column). Equal digests on the
vendored copy mean every loader reads exactly the same rows from it, so the model-dependent
filters build the same instances (same uids and targets) as the stored runs.
"""

import hashlib
import json
from pathlib import Path

import pytest

from heta_lens.evals.datasets.curated_build import build_curated
from heta_lens.evals.datasets.longra import CANDIDATES, read_candidates
from heta_lens.evals.datasets.sequence import PROMPT_DIR, PROMPT_FILES, read_prompts
from heta_lens.models import VENDORED_DATA, default_data_dir

ORIGINAL_DIGESTS = {
    "curated": "63bbbecb9ba55e6b974b9f1f0ba2d5ee5a604d5a382dbf2312ab4faeb13d9ef9",
    "longra": "c764a60d5ed0cf915dcd58296b5e7672bea8f86a52fe87fa582c1557611d8394",
    "evaluated25": "a69ebfab1d7ff8457689e785bb4a37a15b2cb8c38c12dfb6d873dc6e3ee03cd6",
    "tellmewhy2": "f4fbf217c704e6ca1b1a9b57c0192c874ef1de3e8b311f07ae5602d34a41e7c0",
    "wikitext": "12422e68ae2430d16f6d9e39d7e69812898e474df63d19de024985b44613ccfb",
}


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def test_default_data_is_the_vendored_copy(monkeypatch):
    monkeypatch.delenv("HETA_LENS_DATA", raising=False)
    assert default_data_dir() == VENDORED_DATA
    assert VENDORED_DATA.is_relative_to(Path(__import__("heta_lens").__file__).parent)
    monkeypatch.setenv("HETA_LENS_DATA", "/somewhere/else")
    assert default_data_dir() == Path("/somewhere/else")


def test_curated_rows_equal_those_built_from_the_full_sources():
    assert _digest(build_curated(data_dir=VENDORED_DATA)) == ORIGINAL_DIGESTS["curated"]


def test_longra_candidates_equal_those_of_the_full_file():
    candidates = read_candidates(VENDORED_DATA / CANDIDATES)
    assert _digest([repr(c) for c in candidates]) == ORIGINAL_DIGESTS["longra"]


@pytest.mark.parametrize("key", sorted(PROMPT_FILES))
def test_sequence_prompts_equal_the_originals(key):
    prompts = read_prompts(VENDORED_DATA / PROMPT_DIR / PROMPT_FILES[key])
    assert _digest(prompts) == ORIGINAL_DIGESTS[key]


def test_every_vendored_folder_says_where_its_data_comes_from():
    folders = [p for p in VENDORED_DATA.iterdir() if p.is_dir()]
    assert {p.name for p in folders} == {"reagent", "narrativeqa", "sciq"}
    for folder in folders:
        source = (folder / "SOURCE.md").read_text()
        assert "Licen" in source and "Provenance" in source
        for data_file in folder.rglob("*"):
            if data_file.is_file() and data_file.name != "SOURCE.md":
                assert data_file.name in source, f"{data_file} is not described in {folder}"


def test_vendored_data_stays_small():
    total = sum(p.stat().st_size for p in VENDORED_DATA.rglob("*") if p.is_file())
    assert total < 4_000_000


def _data_root(tmp_path: Path) -> Path:
    """A copy of the vendored layout whose files the caller then breaks."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(VENDORED_DATA, root)
    return root


def test_malformed_summaries_name_the_file_and_the_schema(tmp_path):
    root = _data_root(tmp_path)
    path = root / "narrativeqa" / "summaries_valid_test.jsonl"
    path.write_text('{"document_id": "x", "summary": "no detok field"}\n')
    with pytest.raises(ValueError, match=r"summaries_valid_test.jsonl:1: missing") as err:
        build_curated(data_dir=root)
    assert "['document_id', 'summary_detok']" in str(err.value)


def test_sciq_without_its_columns_names_them(tmp_path):
    root = _data_root(tmp_path)
    (root / "sciq" / "sciq_test_with_support.csv").write_text("question,answer\nq,a\n")
    with pytest.raises(ValueError, match=r"needs columns \['correct_answer', 'question', 'supp"):
        build_curated(data_dir=root)


def test_missing_file_names_the_path_and_the_override(tmp_path):
    root = _data_root(tmp_path)
    (root / "reagent" / "sequence_level" / "wikitext.txt").unlink()
    with pytest.raises(FileNotFoundError, match="wikitext.txt does not exist; pass --data-dir"):
        read_prompts(root / PROMPT_DIR / PROMPT_FILES["wikitext"])
