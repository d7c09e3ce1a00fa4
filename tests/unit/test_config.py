"""HetaConfig: every invalid field is refused by name; ablations and the literal reading."""

import pytest

import heta_lens as H

BAD = [
    ({"beta": -0.1}, "beta and gamma must be >= 0"),
    ({"n_probes": 0}, "n_probes must be >= 1"),
    ({"mask_chunk": 0}, "mask_chunk must be >= 1"),
    ({"hvp_chunk": 0}, "hvp_chunk"),
    ({"hvp_memory_gb": 0}, "hvp_memory_gb must be > 0"),
    ({"gate_mode": "flow"}, "unknown gate_mode 'flow'"),
    ({"normalization": "l2"}, "unknown normalization 'l2'"),
    ({"curvature_estimator": "diag"}, "unknown curvature_estimator 'diag'"),
    ({"lowrank_scope": "row"}, "unknown lowrank_scope 'row'"),
    ({"lowrank_rank": 0}, "lowrank_rank and layer_k must be >= 1"),
    ({"window": 0}, "window must be >= 1 or None"),
    ({"window_view": "both"}, "unknown window_view 'both'"),
    ({"window_overlap": 1.0}, r"window_overlap must be in \[0, 1\)"),
    ({"hvp_strategy": "func"}, "unknown hvp_strategy 'func'"),
    ({"kl_strategy": "cached"}, "unknown kl_strategy 'cached'"),
    ({"sink": "drop"}, "unknown sink policy 'drop'"),
    ({"use_gate": False, "use_curvature": False, "use_information": False}, "at least one"),
]


@pytest.mark.parametrize(("fields", "message"), BAD)
def test_invalid_fields_are_named(fields, message):
    with pytest.raises(ValueError, match=message):
        H.HetaConfig(**fields)


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


def test_literal_reading_and_round_trip():
    literal = H.HetaConfig.literal(beta=0.3)
    assert (literal.normalization, literal.sink, literal.beta) == ("none", "keep", 0.3)
    assert H.HetaConfig(**literal.to_dict()) == literal
