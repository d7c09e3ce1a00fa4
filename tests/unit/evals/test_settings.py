"""EvalSettings: validation, preset application to the HETA family, stable row seeds."""

import pytest

from heta_lens.config import HetaConfig
from heta_lens.evals.settings import EvalSettings, row_seed
from heta_lens.presets import preset


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_draws": 0}, "n_draws must be >= 1"),
        ({"metrics": ("soft", "lime")}, "unknown metric group"),
        ({"heta_preset": "turbo"}, "unknown preset 'turbo'"),
        ({"heta_overrides": (("probes", 2),)}, "unknown HetaConfig field"),
        ({"mask": "pad"}, "unknown mask 'pad'"),
    ],
)
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EvalSettings(dataset="d", model="m", **kwargs)


def test_preset_replaces_estimator_fields_and_keeps_ablation_switches():
    settings = EvalSettings(
        dataset="d", model="m", heta_preset="fast", heta_overrides=(("n_probes", 3),)
    )
    base = HetaConfig.ablation("kl_only")
    config = settings.heta_config(base)
    assert config.curvature == preset("fast").curvature.__class__(n_probes=3)
    assert config.curvature.estimator == "row"
    assert config.use_curvature is False and config.use_gate is True
    assert EvalSettings(dataset="d", model="m").heta_config(base) == base


def test_row_seed_is_stable_and_distinct():
    assert row_seed(0, "u", 3, "heta") == row_seed(0, "u", 3, "heta")
    seeds = {
        row_seed(s, u, t, m)
        for s in (0, 1)
        for u in ("u", "v")
        for t in (3, 4)
        for m in ("heta", "random")
    }
    assert len(seeds) == 16
    assert all(0 <= s < 2**63 for s in seeds)
