"""Variants derived from stored ablation rows equal the live variants (tiny float64 models)."""

import pytest
import torch

from heta_lens.config import HetaConfig
from heta_lens.evals.derived import SOURCE_METHODS, derived_rows, terms_from_rows
from heta_lens.family import heta_family
from heta_lens.registry import get_method
from heta_lens.result import HetaResult
from tests.conftest import make_model, model_params

VARIANTS = ("heta", "heta_geo", "heta_rankmix", "heta_max", "heta@beta=0.2")
TOKENS = torch.tensor([1, 5, 7, 3, 9, 11, 4, 8, 2])


def _configs() -> dict[str, HetaConfig]:
    from heta_lens.evals.methods import resolve_method

    names = (*SOURCE_METHODS, *VARIANTS)
    return {n: resolve_method(n)[1].with_probes(2) for n in names}


def _rows(model, targets=(5, 8)) -> list[dict]:
    configs = _configs()
    rows = []
    for target in targets:
        for name, result in heta_family(model, TOKENS, target=target, configs=configs).items():
            rows.append(
                {
                    "key": f"u|{target}|{name}",
                    "uid": "u",
                    "target": target,
                    "method": name,
                    "scores": result.scores.tolist(),
                }
            )
    return rows


@pytest.mark.parametrize("model_id", model_params(["hooked-ln", "bridge"]))
def test_derived_rows_equal_live_variants(model_id):
    rows = _rows(make_model(model_id))
    configs = _configs()
    stored = get_method("heta").default_config.with_probes(2)
    variants = {n: configs[n] for n in VARIANTS}
    derived = derived_rows(rows, variants=variants, stored=stored)
    live = {(r["target"], r["method"]): r["scores"] for r in rows}
    assert len(derived) == 2 * len(VARIANTS)
    for row in derived:
        got = torch.tensor(row["scores"], dtype=torch.float64)
        want = torch.tensor(live[(row["target"], row["method"])], dtype=torch.float64)
        # floor: rebuilding G = (h + k) / n and S' = h / (β·G) costs a few ulps (measured max
        # relative error 5e-16 on these models); 1e-13 leaves two decades
        torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-17)
        assert row["key"] == f"u|{row['target']}|{row['method']}" and row["metrics"] == {}


@pytest.mark.bridge
def test_rebuilt_terms_are_the_live_terms():
    model = make_model("bridge")
    rows = _rows(model, targets=(8,))
    terms = terms_from_rows({r["method"]: r for r in rows})
    live = get_method("heta")(model, TOKENS, target=8, config=_configs()["heta"])
    assert isinstance(live, HetaResult) and terms.complete
    for got, want in (
        (terms.gate_term, live.gate_term),
        (terms.curvature_term, live.curvature_term),
        (terms.information_term, live.information_term),
    ):
        assert want is not None
        torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-17)


def test_missing_source_row_is_named():
    row = {"key": "u|3|heta_kl_only", "uid": "u", "target": 3, "scores": [0.0, 1.0]}
    with pytest.raises(ValueError, match="missing heta_hessian_only, heta_no_gate"):
        terms_from_rows({"heta_kl_only": row})


def test_inconsistent_rows_refused():
    rows = {
        "heta_hessian_only": {"scores": [0.0, 0.2, 0.1]},
        "heta_kl_only": {"scores": [0.0, 0.1, 0.1]},
        "heta_no_gate": {"scores": [0.5, 0.0, 0.3]},  # 0 where the gated rows are not
    }
    with pytest.raises(ValueError, match="not β₀·S' \\+ γ₀·I'"):
        terms_from_rows(rows)


def test_only_combining_fields_can_be_derived():
    stored = HetaConfig()
    rows: list[dict] = []
    for bad in (
        HetaConfig(gate_mode="attention"),
        HetaConfig(sink="keep"),
        HetaConfig.ablation("kl_only"),
    ):
        with pytest.raises(ValueError, match="only beta, gamma, mix and normalization"):
            derived_rows(rows, variants={"v": bad}, stored=stored)
    with pytest.raises(ValueError, match="normalization='none'"):
        derived_rows(rows, variants={"v": HetaConfig(normalization="none")}, stored=stored)
