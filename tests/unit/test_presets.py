"""One preset-merge rule: the CLI, the demo and the evals give a method the same config."""

from dataclasses import fields, replace

import pytest

import heta_lens as H
from heta_lens import cli
from heta_lens.demo import method_config
from heta_lens.evals.settings import EvalSettings
from heta_lens.presets import ESTIMATOR_FIELDS, with_preset
from heta_lens.registry import _REGISTRY

HETA_FAMILY = [
    n for n in H.list_methods() if isinstance(H.get_method(n).default_config, H.HetaConfig)
]


def _three_ways(name: str, preset: str) -> tuple[H.HetaConfig, H.HetaConfig, H.HetaConfig]:
    args = cli._parser().parse_args(["attribute", "x", "--method", name, "--preset", preset])
    from_cli = cli.method_spec(args).default_config
    from_demo = method_config(name, preset)
    from_evals = EvalSettings(dataset="longra", model="tiny", heta_preset=preset).heta_config(
        H.get_method(name).default_config
    )
    return from_cli, from_demo, from_evals


@pytest.mark.parametrize("preset", list(H.PRESETS))
@pytest.mark.parametrize("name", HETA_FAMILY)
def test_cli_demo_and_evals_agree(name, preset):
    from_cli, from_demo, from_evals = _three_ways(name, preset)
    assert from_cli == from_demo == from_evals
    base, chosen = H.get_method(name).default_config, H.PRESETS[preset]
    for f in fields(H.HetaConfig):
        expected = chosen if f.name in ESTIMATOR_FIELDS else base
        assert getattr(from_cli, f.name) == getattr(expected, f.name), f.name


def test_a_methods_own_beta_survives_a_preset(monkeypatch):
    """The bug this rule fixed: `attribute --preset fast` used to reset β to the preset's."""
    spec = H.get_method("heta")
    custom = replace(spec, name="heta_beta08", default_config=H.HetaConfig(beta=0.8, gamma=0.2))
    monkeypatch.setitem(_REGISTRY, custom.name, custom)
    for config in _three_ways(custom.name, "fast"):
        assert (config.beta, config.gamma) == (0.8, 0.2)
        assert config.curvature == H.RowBlock(n_probes=8)


def test_same_scores_through_cli_demo_and_evals_configs(model, tokens):
    configs = _three_ways("heta_kl_only", "fast")
    results = [H.attribute(model, tokens, target=5, config=c) for c in configs]
    assert all(r.scores.equal(results[0].scores) for r in results[1:])


def test_preset_is_refused_for_a_baseline_and_an_unknown_name():
    with pytest.raises(ValueError, match="HETA-family methods, not 'occlusion'"):
        H.get_method("occlusion").with_preset("fast")
    with pytest.raises(ValueError, match="unknown preset 'turbo'"):
        with_preset(H.HetaConfig(), "turbo")
