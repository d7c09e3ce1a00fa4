"""The lock files agree with the legs' top-level pins and with pyproject's declared range."""

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LEGS = ("tl3", "tl4")


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return pins


@pytest.mark.parametrize("leg", LEGS)
def test_lock_holds_the_legs_top_level_pins(leg):
    top = _pins(ROOT / "constraints" / f"{leg}.txt")
    lock = _pins(ROOT / "constraints" / f"{leg}.lock")
    assert {"torch", "transformer-lens", "transformers"} <= top.keys()
    for name, version in top.items():
        assert lock.get(name) == version, f"{leg}.lock has {name} {lock.get(name)}, pin {version}"


@pytest.mark.parametrize("leg", LEGS)
def test_lock_satisfies_pyprojects_declared_range(leg):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = _pins(ROOT / "constraints" / f"{leg}.lock")
    for spec in project["dependencies"]:
        req = Requirement(spec)
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name in lock, f"{leg}.lock does not pin the dependency {name}"
        assert Version(lock[name]) in req.specifier, f"{leg}.lock: {name} {lock[name]} ∉ {spec}"


def test_the_legs_span_both_cache_keywords():
    """One leg on a transformers that takes the cache as `past_key_values`, one as `cache`."""
    locks = [_pins(ROOT / "constraints" / f"{leg}.lock") for leg in LEGS]
    versions = [Version(lock["transformers"]) for lock in locks]
    assert min(versions) < Version("5.24") <= max(versions)
