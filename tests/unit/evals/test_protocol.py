"""Protocols in the settings: registry, ``--protocol``, and stored runs read as ``legacy``."""

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from heta_lens.evals.protocol import DEFAULT_PROTOCOL, PROTOCOLS, Protocol, get_protocol
from heta_lens.evals.runner import check_run_file
from heta_lens.evals.settings import EvalSettings, stored_defaults
from heta_lens.evals.stored import read_settings
from heta_lens.evals.suite_settings import SuiteSettings
from heta_lens.flags import from_flags
from tests.unit.evals.test_suite import _eval_parser

ROOT = Path(__file__).resolve().parents[3]
ALL: Any = "all"  # not a valid dsa_over (typed Any to reach the runtime check)
STORED_RUNS = sorted(p.parent for p in (ROOT / "evals" / "runs").glob("*/run.json"))


def test_registry_and_validation():
    assert set(PROTOCOLS) == {"legacy", "standard"} and DEFAULT_PROTOCOL == "standard"
    assert get_protocol("legacy").protected == 0 and get_protocol("standard").protected == 1
    with pytest.raises(ValueError, match="unknown protocol 'x'; valid: legacy, standard"):
        get_protocol("x")
    with pytest.raises(ValueError, match="protected"):
        Protocol(name="p", protected=2, dsa_over="context", noise_replaceable=True, description="")
    with pytest.raises(ValueError, match="dsa_over"):
        Protocol(name="p", protected=0, dsa_over=ALL, noise_replaceable=True, description="")
    # the stored runs' sensitivity noise placement is kept by legacy only
    assert not get_protocol("legacy").noise_replaceable
    assert get_protocol("standard").noise_replaceable


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"protocol": "nope"}, "unknown protocol"),
        ({"controls": ("rank", "nope")}, "unknown control"),
        ({"controls": ("rank",), "metrics": ("hard",)}, "add 'soft'"),
        ({"matched_fraction": 0.0}, "matched_fraction"),
    ],
)
def test_bad_protocol_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EvalSettings(dataset="curated", model="m", **kwargs)


def test_cli_flags_reach_the_eval_settings():
    args = ["eval", "curated", "--protocol", "legacy", "--controls", "rank,perm"]
    settings = from_flags(SuiteSettings, _eval_parser().parse_args(args)).eval_settings()
    assert settings.protocol == "legacy" and settings.controls == ("rank", "perm")
    assert SuiteSettings(dataset="curated").eval_settings().protocol == "standard"
    with pytest.raises(SystemExit):
        _eval_parser().parse_args(["eval", "curated", "--protocol", "nope"])


@pytest.mark.parametrize("run", STORED_RUNS, ids=lambda p: p.name)
def test_stored_runs_read_as_legacy_with_the_same_identity(run, tmp_path):
    """Every stored run.json (none records a protocol) reads back as legacy, is accepted
    by the resume check unchanged, and is refused under the new default."""
    stored = json.loads((run / "run.json").read_text())
    assert "protocol" not in stored["settings"]
    settings = read_settings(run)
    assert settings.protocol == "legacy" and settings.controls == ()
    copy = tmp_path / run.name
    copy.mkdir()
    shutil.copy(run / "run.json", copy / "run.json")
    check_run_file(copy, settings)  # same identity: no error
    assert json.loads((copy / "run.json").read_text()) == stored  # and nothing rewritten
    # every stored key compares equal to what the settings give back
    given = json.loads(json.dumps(settings.to_dict()))
    assert all(given[k] == v for k, v in stored["settings"].items())
    new = dataclasses.replace(settings, protocol="standard")
    with pytest.raises(ValueError, match=r"different settings \(protocol\).*--protocol legacy"):
        check_run_file(copy, new)


def test_new_run_records_its_protocol(tmp_path):
    settings = EvalSettings(dataset="curated", model="m", controls=("matched",))
    check_run_file(tmp_path / "r", settings)
    stored = json.loads((tmp_path / "r" / "run.json").read_text())["settings"]
    assert stored["protocol"] == "standard" and stored["controls"] == ["matched"]
    assert read_settings(tmp_path / "r") == settings
    assert stored_defaults()["protocol"] == "legacy"
