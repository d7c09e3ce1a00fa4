"""attribute_many_ray on a real two-node Ray cluster: the same file and results as the local
attribute_many, and a file started locally is finished on Ray."""

import json

import pytest
import torch

from heta_lens import attribute_many
from heta_lens.batch import read_lines
from heta_lens.batch_ray import attribute_many_ray
from heta_lens.cli import main
from heta_lens.cluster import RayOptions
from heta_lens.testing import tiny_bridge
from tests.unit.test_batch import RECORDS

# `cluster` (tests/conftest.py): one two-node Ray cluster for every `ray` test of the session.
pytestmark = [pytest.mark.ray, pytest.mark.bridge, pytest.mark.xdist_group("ray")]


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The local runner's output lines and results (one torch thread, as a 1-CPU worker)."""
    out = tmp_path_factory.mktemp("local") / "r.jsonl"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = list(attribute_many(tiny_bridge(), RECORDS, out=out, progress=False))
    finally:
        torch.set_num_threads(threads)
    return read_lines(out), results


def test_ray_gives_the_local_file_and_results(cluster, local, tmp_path):
    lines, results = local
    out = tmp_path / "r.jsonl"
    options = RayOptions(address=cluster.address, workers=2)
    got = list(attribute_many_ray(tiny_bridge, RECORDS, options=options, out=out, progress=False))
    assert read_lines(out) == lines  # same lines, by key (written in completion order)
    assert out.read_text().count("\n") == len(RECORDS)
    # input order; compared as JSON text, where NaN (a contrast's target_log_prob) equals NaN
    assert [json.dumps(r.to_dict()) for r in got] == [json.dumps(r.to_dict()) for r in results]


def test_a_file_started_locally_is_finished_on_ray(cluster, local, tmp_path):
    lines, _ = local
    out = tmp_path / "r.jsonl"
    list(attribute_many(tiny_bridge(), RECORDS[:2], out=out, progress=False))
    options = RayOptions(address=cluster.address, workers=2)
    list(attribute_many_ray(tiny_bridge, RECORDS, options=options, out=out, progress=False))
    assert read_lines(out) == lines
    keys = [json.loads(line)["key"] for line in out.read_text().splitlines()]
    assert sorted(keys) == sorted(lines)  # the two local lines were not recomputed


def test_the_cli_runs_on_ray_into_the_local_file(cluster, model_dir, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in RECORDS[:3]))
    common = ["attribute", "--input", str(prompts), "--model", str(model_dir)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a 1-CPU Ray worker
    try:
        assert main([*common, "--out", str(tmp_path / "local.jsonl")]) == 0
    finally:
        torch.set_num_threads(threads)
    ray = ["--runner", "ray", "--ray-address", cluster.address, "--workers", "2"]
    assert main([*common, "--out", str(tmp_path / "ray.jsonl"), *ray]) == 0
    local, on_ray = read_lines(tmp_path / "local.jsonl"), read_lines(tmp_path / "ray.jsonl")
    assert len(local) == 3
    assert json.dumps(on_ray, sort_keys=True) == json.dumps(local, sort_keys=True)
