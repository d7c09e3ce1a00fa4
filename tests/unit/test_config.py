"""HetaConfig and its typed parts: every invalid field is refused by name; impossible
combinations cannot be written; the flat keywords of ≤ 0.1 map onto the same types; ablations,
the literal reading and both JSON forms round-trip."""

import dataclasses

import pytest

import heta_lens as H
from heta_lens.config import (
    CURVATURE_TYPES,
    Exact,
    Hvp,
    Information,
    LayerSampled,
    LowRank,
    RowBlock,
    Window,
)
from heta_lens.config_flat import FLAT_FIELDS, config_from_dict, with_flat

BAD = [
    (lambda: H.HetaConfig(beta=-0.1), "beta and gamma must be >= 0"),
    (lambda: Exact(n_probes=0), "n_probes must be >= 1"),
    (lambda: RowBlock(n_probes=0), "n_probes must be >= 1"),
    (lambda: LowRank(rank=0), "rank must be >= 1"),
    (lambda: LowRank(scope="row"), "unknown low-rank scope 'row'"),  # type: ignore[arg-type]
    (lambda: LayerSampled(k=0), "k must be >= 1"),
    (lambda: Information(chunk=0), "chunk must be >= 1"),
    (lambda: Information(strategy="cached"), "unknown KL strategy 'cached'"),  # type: ignore[arg-type]
    (lambda: Hvp(chunk=0), "chunk must be >= 1"),
    (lambda: Hvp(memory_gb=0), "memory_gb must be > 0"),
    (lambda: Information(memory_gb=-1.0), "memory_gb must be > 0"),
    (lambda: Hvp(strategy="func"), "unknown HVP strategy 'func'"),  # type: ignore[arg-type]
    (lambda: Window(size=0), "size must be >= 1"),
    (lambda: Window(size=4, view="both"), "unknown window view 'both'"),  # type: ignore[arg-type]
    (lambda: Window(size=4, overlap=1.0), r"window overlap must be in \[0, 1\)"),
    (lambda: H.HetaConfig(gate_mode="flow"), "unknown gate_mode 'flow'"),  # type: ignore[arg-type]
    (lambda: H.HetaConfig(normalization="l2"), "unknown normalization 'l2'"),  # type: ignore[arg-type]
    (lambda: H.HetaConfig(sink="drop"), "unknown sink policy 'drop'"),  # type: ignore[arg-type]
    (
        lambda: H.HetaConfig(use_gate=False, use_curvature=False, use_information=False),
        "at least one",
    ),
]


@pytest.mark.parametrize(("build", "message"), BAD)
def test_invalid_fields_are_named(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_a_part_of_the_wrong_type_is_refused():
    with pytest.raises(TypeError, match="HetaConfig.curvature must be"):
        H.HetaConfig(curvature=Window(size=3))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="HetaConfig.window must be"):
        H.HetaConfig(window=64)  # type: ignore[arg-type]


def test_options_live_on_the_variant_they_belong_to():
    assert {f.name for f in dataclasses.fields(Exact)} == {"n_probes", "interactions"}
    assert {f.name for f in dataclasses.fields(LowRank)} == {"rank", "scope", "n_probes"}
    assert {f.name for f in dataclasses.fields(LayerSampled)} == {"k", "n_probes", "interactions"}
    assert {f.name for f in dataclasses.fields(RowBlock)} == {"n_probes"}
    assert set(CURVATURE_TYPES) == {"exact", "row", "lowrank", "layer"}


FLAT_BAD = [
    ({"lowrank_rank": 4}, "lowrank_rank does not apply to curvature_estimator='exact'"),
    ({"curvature_estimator": "row", "layer_k": 2}, "layer_k does not apply"),
    ({"window_overlap": 0.25}, "window_overlap need window=<size>"),
    ({"curvature_estimator": "diag"}, "unknown curvature_estimator 'diag'"),
    ({"n_prob": 3}, r"unknown HetaConfig field\(s\) \['n_prob'\]"),
    ({"mask_chunk": 0}, "chunk must be >= 1"),
    ({"window": 0}, "size must be >= 1"),
]


@pytest.mark.parametrize(("flat", "message"), FLAT_BAD)
def test_flat_keywords_that_do_not_apply_are_refused(flat, message):
    with pytest.raises(ValueError, match=message):
        H.HetaConfig.flat(**flat)


def test_flat_keywords_map_onto_the_types():
    cfg = H.HetaConfig.flat(
        beta=0.8,
        n_probes=3,
        curvature_estimator="lowrank",
        lowrank_rank=4,
        lowrank_scope="global",
        mask="mean",
        kl_strategy="batched",
        mask_chunk=5,
        hvp_strategy="replicate",
        hvp_chunk=2,
        hvp_memory_gb=1.0,
        window=16,
        window_overlap=0.25,
        window_view="window",
    )
    assert cfg == H.HetaConfig(
        beta=0.8,
        curvature=LowRank(rank=4, scope="global", n_probes=3),
        information=Information(mask="mean", strategy="batched", chunk=5),
        hvp=Hvp(strategy="replicate", chunk=2, memory_gb=1.0),
        window=Window(size=16, overlap=0.25, view="window"),
    )
    # switching the estimator keeps the probe count; window=None removes the windows
    assert with_flat(cfg, curvature_estimator="layer").curvature == LayerSampled(n_probes=3)
    assert with_flat(cfg, window=None).window is None
    # typed parts pass through first, flat keywords then apply on top
    assert with_flat(cfg, curvature=RowBlock(), n_probes=5).curvature == RowBlock(n_probes=5)


EXAMPLES = {
    "beta": 0.7, "gamma": 0.2, "seed": 3, "gate_mode": "attention", "use_gate": False,
    "use_curvature": False, "use_information": False, "normalization": "max", "sink": "keep",
    "mask": "mean", "kl_strategy": "batched", "mask_chunk": 2, "hvp_strategy": "replicate",
    "hvp_chunk": 4, "hvp_memory_gb": 2.0, "mask_memory_gb": 0.5, "curvature_estimator": "row",
    "n_probes": 3, "lowrank_rank": 4, "lowrank_scope": "global", "layer_k": 2, "window": 8,
    "window_overlap": 0.25, "window_view": "window", "gate_by_head": True, "interactions": True,
    "mix": "geometric",
}  # fmt: skip
NEEDS = {
    "lowrank_rank": {"curvature_estimator": "lowrank"},
    "lowrank_scope": {"curvature_estimator": "lowrank"},
    "layer_k": {"curvature_estimator": "layer"},
    "window_overlap": {"window": 8},
    "window_view": {"window": 8},
}


@pytest.mark.parametrize("name", FLAT_FIELDS)
def test_every_flat_keyword_changes_the_config(name):
    base = H.HetaConfig.flat(**NEEDS.get(name, {}))
    changed = base.updated(**{name: EXAMPLES[name]})
    assert changed != base
    assert config_from_dict(changed.to_dict()) == changed


def test_ablations_switch_exactly_one_ingredient_off():
    full = H.HetaConfig.ablation("full")
    assert full == H.HetaConfig()
    base = full.to_dict()
    differ = {}
    for name in H.ABLATIONS:
        changed = H.HetaConfig.ablation(name).to_dict()
        differ[name] = {k for k, v in changed.items() if base[k] != v}
    assert differ == {
        "full": set(),
        "transition_only": {"use_curvature", "use_information"},
        "hessian_only": {"use_information"},
        "kl_only": {"use_curvature"},
        "no_gate": {"use_gate"},
        "uniform_gate": {"gate_mode"},
    }
    with pytest.raises(ValueError, match="unknown ablation 'none'"):
        H.HetaConfig.ablation("none")
    assert H.HetaConfig.ablation("kl_only", n_probes=2).curvature == Exact(n_probes=2)


@pytest.mark.parametrize(
    "config",
    [
        H.HetaConfig.literal(beta=0.3),
        H.HetaConfig(curvature=LowRank(rank=3, scope="global"), window=Window(size=9)),
        H.HetaConfig(curvature=LayerSampled(k=2), information=Information(mask="token:5")),
    ],
)
def test_nested_dict_round_trip(config):
    data = config.to_dict()
    assert data["curvature"]["estimator"] == config.curvature.estimator
    assert config_from_dict(data) == config


def test_flat_dict_of_older_versions_is_read():
    legacy = {
        "beta": 0.5, "gamma": 0.5, "n_probes": 8, "seed": 0, "mask": "zero",
        "gate_mode": "rollout", "use_gate": True, "use_curvature": True,
        "use_information": True, "normalization": "sum", "sink": "exclude",
        "hvp_strategy": "batched_grad", "hvp_chunk": None, "hvp_memory_gb": None,
        "mask_chunk": 16, "kl_strategy": "prefix", "curvature_estimator": "row",
        "lowrank_rank": 64, "lowrank_scope": "block", "layer_k": 4, "window": None,
        "window_overlap": 0.5, "window_view": "prefix",
    }  # fmt: skip
    assert config_from_dict(legacy) == H.HetaConfig(curvature=RowBlock())
    with pytest.raises(ValueError, match="lowrank_rank does not apply"):
        config_from_dict({**legacy, "lowrank_rank": 3})  # a set inert field is not dropped
