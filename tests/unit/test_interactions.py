"""The pairwise curvature (interaction) map against explicit Hessian blocks, same probes."""

import pytest
import torch

import heta_lens as H
from heta_lens.config import Exact, LayerSampled, LowRank, RowBlock
from heta_lens.curvature.exact import curvature_interactions
from heta_lens.curvature.hvp import HvpOperator
from heta_lens.curvature.probes import rademacher_probes
from heta_lens.family import heta_family
from heta_lens.presets import with_preset
from tests.conftest import oracle_tolerance
from tests.unit import oracles
from tests.unit.test_estimators import _explicit_resid_hessian
from tests.unit.test_model_state import _assert_same, _snapshot
from tests.unit.test_targets import _metrics


def _probes(model, ctx: int, m: int = 3, seed: int = 3) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return rademacher_probes(m, ctx, model.cfg.d_model, generator=gen, dtype=torch.float64)


def _map_from_hessian(hess: torch.Tensor, probes: torch.Tensor) -> torch.Tensor:
    """X[i, j] = mean_k ‖H[i, :, j, :] probes[k, j]‖₁ from a dense [ctx, d, ctx, d] Hessian."""
    products = torch.einsum("idje,kje->kjid", hess, probes)  # [k, j, i, d]
    return products.abs().sum(-1).mean(0).T


def test_fixed_probes_match_explicit_hessian_blocks(model, tokens):
    target = 5
    probes = _probes(model, target)
    got = curvature_interactions(model, tokens, target=target, probes=probes)
    hess = oracles.explicit_hessian(model, tokens[:target], int(tokens[target]))
    torch.testing.assert_close(got, _map_from_hessian(hess, probes), **oracle_tolerance(model))
    own = H.curvature_sensitivity(model, tokens, target=target, probes=probes)
    # Same HVPs, one L1 norm over the same d_model entries each: measured equal bit for bit
    # on all four tiny models; 1e-13 leaves room for a reduction order that differs.
    torch.testing.assert_close(got.diagonal(), own, rtol=1e-13, atol=0)


def test_attribute_keeps_the_map_of_its_own_probes(model, tokens):
    target, seed = 6, 4
    config = H.HetaConfig(curvature=Exact(n_probes=2, interactions=True), seed=seed)
    result = H.attribute(model, tokens, target=target, config=config)
    assert result.interactions is not None and result.curvature is not None
    assert torch.equal(result.interactions.diagonal(), result.curvature)
    hess = oracles.explicit_hessian(model, tokens[:target], int(tokens[target]))
    expected = _map_from_hessian(hess, _probes(model, target, m=2, seed=seed))
    torch.testing.assert_close(result.interactions, expected, **oracle_tolerance(model))
    plain = H.attribute(model, tokens, target=target, config=config.updated(interactions=False))
    assert plain.interactions is None
    torch.testing.assert_close(result.scores, plain.scores, rtol=1e-13, atol=0)


def test_the_map_costs_no_extra_hvp(model, tokens, monkeypatch):
    seen: list[int] = []
    call = HvpOperator.__call__

    def counting(self, vectors):
        seen.append(int(vectors.shape[0]))
        return call(self, vectors)

    monkeypatch.setattr(HvpOperator, "__call__", counting)
    counts = []
    for interactions in (False, True):
        seen.clear()
        config = H.HetaConfig(
            curvature=Exact(n_probes=2, interactions=interactions), use_information=False
        ).updated(hvp_chunk=4)
        H.attribute(model, tokens, target=6, config=config)
        counts.append(list(seen))
    assert counts[0] == counts[1] and sum(counts[0]) == 6 * 2


def test_layer_sampled_map_matches_the_residual_hessian(model, tokens):
    target, layer = 5, model.cfg.n_layers - 1
    probes = _probes(model, target)
    got = curvature_interactions(
        model, tokens, target=target, estimator=LayerSampled(k=1), probes=probes
    )
    hess = _explicit_resid_hessian(model, tokens[:target], int(tokens[target]), layer)
    torch.testing.assert_close(got, _map_from_hessian(hess, probes), **oracle_tolerance(model))
    config = H.HetaConfig(curvature=LayerSampled(k=1, n_probes=2, interactions=True))
    result = H.attribute(model, tokens, target=target, config=config)
    assert result.interactions is not None and result.curvature is not None
    assert torch.equal(result.interactions.diagonal(), result.curvature)


def test_contrast_and_metric_targets_have_their_maps(model, tokens):
    probes = _probes(model, 5)
    got = curvature_interactions(model, tokens, target=H.Contrast(5, 8, position=4), probes=probes)

    def contrast(logits, _act):
        return logits[-1, 5] - logits[-1, 8]

    hess = oracles.explicit_hessian_of(model, tokens[:5], 5, contrast)
    torch.testing.assert_close(got, _map_from_hessian(hess, probes), **oracle_tolerance(model))

    hook, fn = _metrics(model)["direction"]
    probes = _probes(model, 6)
    target = H.Metric(hook, fn, position=5)
    got = curvature_interactions(model, tokens, target=target, probes=probes)
    hess = oracles.explicit_hessian_of(model, tokens[:6], 6, lambda _l, act: fn(act[-1]), hook)
    torch.testing.assert_close(got, _map_from_hessian(hess, probes), **oracle_tolerance(model))


def test_a_family_shares_the_components_it_can():
    from heta_lens.testing import tiny_bridge

    model, ids = tiny_bridge(), torch.tensor([1, 5, 7, 3, 9, 11])
    configs = {
        "map": H.HetaConfig(curvature=Exact(n_probes=2, interactions=True), gate_by_head=True),
        "plain": H.HetaConfig(curvature=Exact(n_probes=2)),
    }
    together = heta_family(model, ids, target=5, configs=configs)
    for name, config in configs.items():
        alone = H.attribute(model, ids, target=5, config=config)
        assert torch.equal(together[name].scores, alone.scores)
        for field in ("interactions", "gate_by_head"):
            got, expected = getattr(together[name], field), getattr(alone, field)
            assert (got is None and expected is None) or torch.equal(got, expected)


def test_estimators_without_a_map_refuse_clearly():
    from heta_lens.testing import tiny_bridge

    model, ids = tiny_bridge(), torch.tensor([1, 5, 7, 3])
    for estimator in (RowBlock(n_probes=1), LowRank(rank=2, n_probes=1)):
        with pytest.raises(ValueError, match="cannot give pairwise interactions"):
            curvature_interactions(model, ids, estimator=estimator)
        with pytest.raises(ValueError, match="cannot give pairwise interactions"):
            H.HetaConfig(curvature=estimator).keeping(interactions=True)
    with pytest.raises(ValueError, match="interactions does not apply"):
        H.HetaConfig.flat(curvature_estimator="row", interactions=True)
    with pytest.raises(ValueError, match="need use_curvature"):
        H.HetaConfig.ablation("kl_only", interactions=True)
    keeping = H.HetaConfig().keeping(interactions=True)
    assert with_preset(keeping, "LS").curvature == LayerSampled(k=4, interactions=True)
    with pytest.raises(ValueError, match="cannot give pairwise interactions"):
        with_preset(keeping, "fast")
    with pytest.raises(ValueError, match="'prefix' view"):
        H.windowed_attribute(model, ids, config=keeping.updated(n_probes=1), view="window")


def test_model_untouched_with_the_extras_and_after_a_refusal(model, tokens):
    model(tokens[None])  # let a bridge install its own lazy hooks before the snapshot
    before = _snapshot(model)
    both = H.HetaConfig(gate_by_head=True, curvature=Exact(n_probes=1, interactions=True))
    H.attribute(model, tokens, config=both)
    _assert_same(before, _snapshot(model))
    embeddings_metric = H.Metric("blocks.0.hook_resid_pre", lambda a: a.sum(), position=4)
    with pytest.raises(ValueError, match="no head carries it"):
        H.attribute(model, tokens, target=embeddings_metric, config=both)
    _assert_same(before, _snapshot(model))
