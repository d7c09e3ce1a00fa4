"""The cheaper curvature estimators (row, lowrank, layer) against oracles and against eq. 3."""

from typing import Any, cast

import pytest
import torch

import heta_lens as H
from heta_lens.config import CURVATURE_TYPES, Exact, LayerSampled, LowRank, RowBlock
from heta_lens.curvature import curvature_of, estimate_curvature
from heta_lens.curvature.exact import block_curvature
from heta_lens.curvature.hvp import HvpOperator
from heta_lens.curvature.layer import curvature_layer, layer_curvature
from heta_lens.curvature.lowrank import (
    block_lowrank_curvature,
    global_lowrank_curvature,
    lowrank_curvature,
)
from heta_lens.curvature.probes import rademacher_probes
from heta_lens.curvature.row import row_block_curvature, row_curvature
from heta_lens.hooks import ModelAdapter, preserved_model_state
from heta_lens.inputs import prepare
from tests.conftest import oracle_tolerance
from tests.unit import oracles

CHEAP = ("row", "lowrank", "layer")
CTX, D = 4, 6  # synthetic functions: 4 token blocks of width 6


def _gen(seed: int = 3) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _probes(model, ctx: int, m: int, seed: int = 3) -> torch.Tensor:
    return rademacher_probes(m, ctx, model.cfg.d_model, generator=_gen(seed), dtype=torch.float64)


def _estimate(model, tokens, config: H.HetaConfig) -> torch.Tensor:
    adapter = ModelAdapter(model)
    req = prepare(adapter, tokens, None)
    with preserved_model_state(model):
        return estimate_curvature(adapter, req, config=config)


# ---------------------------------------------------------------- synthetic Hessians


def _random(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed), dtype=torch.float64)


def _separable(x: torch.Tensor) -> torch.Tensor:
    """f(X) = Σ_i φ_i(x_i): block-diagonal Hessian with dense, x-dependent blocks."""
    c, w = _random(CTX, D, seed=10), _random(CTX, D, seed=11)
    return (c * torch.sin(x)).sum((-1, -2)) + ((w * x).sum(-1) ** 3).sum(-1)


def _low_rank(q: int, eps: float = 0.0):
    """f(X) = Σ_i ψ(x_i U_i) + (a·X)³ + (ε/2) Σ_i x_iᵀ M x_i: rank(H_ii) ≤ q + 1 when ε = 0.

    The cubic coupling also puts curvature in the off-diagonal blocks (which eq. 3 ignores).
    """
    u, a = _random(CTX, D, q, seed=12), _random(CTX, D, seed=13)
    m = _random(D, D, seed=14)
    m = m + m.T

    def fn(x: torch.Tensor) -> torch.Tensor:
        y = torch.einsum("bcd,cdq->bcq", x, u)
        psi = (y**3).sum((-1, -2)) / 6 + (y.sum(-1) ** 4).sum(-1) / 24
        quad = 0.5 * eps * torch.einsum("bcd,de,bce->b", x, m, x)
        return psi + (a * x).sum((-1, -2)) ** 3 + quad

    return fn


def _synthetic_op(fn) -> HvpOperator:
    return HvpOperator(fn, _random(CTX, D, seed=15))


def _synthetic_probes(m: int = 5) -> torch.Tensor:
    return rademacher_probes(m, CTX, D, generator=_gen(16), dtype=torch.float64)


# ---------------------------------------------------------------- row


def test_row_matches_explicit_hessian(model, tokens):
    target = 5
    hess = oracles.explicit_hessian(model, tokens[:target], int(tokens[target]))
    probes = _probes(model, target, 3)
    expected = torch.einsum("idje,kje->kid", hess, probes).abs().sum(-1).mean(0)
    got = row_curvature(model, tokens, target=target, n_probes=3, generator=_gen())
    torch.testing.assert_close(got, expected, **oracle_tolerance(model))


def test_row_equals_exact_for_block_diagonal_hessian():
    op, probes = _synthetic_op(_separable), _synthetic_probes()
    exact = block_curvature(op, probes, chunk_size=3)
    torch.testing.assert_close(row_block_curvature(op, probes, chunk_size=2), exact)
    coupled = _synthetic_op(_low_rank(2))  # off-diagonal blocks: the two must differ
    assert not torch.allclose(
        row_block_curvature(coupled, probes, chunk_size=2),
        block_curvature(coupled, probes, chunk_size=3),
    )


# ---------------------------------------------------------------- lowrank


@pytest.mark.parametrize("scope", ["block", "global"])
def test_lowrank_at_full_rank_equals_exact(model, tokens, scope):
    exact = H.curvature_sensitivity(model, tokens, target=4, n_probes=3, generator=_gen())
    got = lowrank_curvature(
        model, tokens, target=4, rank=10**6, scope=scope, n_probes=3, generator=_gen()
    )  # rank clipped to d_model (block) or ctx·d_model (global)
    torch.testing.assert_close(got, exact, **oracle_tolerance(model))


def test_block_lowrank_exact_when_block_rank_at_most_r():
    op, probes, q = _synthetic_op(_low_rank(2)), _synthetic_probes(), 2
    exact = block_curvature(op, probes, chunk_size=4)
    sketch = _random(q + 1, CTX, D, seed=17)
    got = block_lowrank_curvature(op, probes, sketch, chunk_size=5)
    torch.testing.assert_close(got, exact, rtol=1e-10, atol=1e-12)
    short = block_lowrank_curvature(op, probes, sketch[:q], chunk_size=5)
    assert not torch.allclose(short, exact, rtol=1e-3)  # rank q < rank(H_ii): not exact


def test_block_lowrank_error_is_first_order_in_the_residual_spectrum():
    """H_ii = rank-(q+1) part + ε·M: the sketch's error must vanish linearly with ε."""
    probes, sketch = _synthetic_probes(), _random(3, CTX, D, seed=17)
    errors = []
    for eps in (1e-3, 1e-5):
        op = _synthetic_op(_low_rank(2, eps))
        exact = block_curvature(op, probes, chunk_size=4)
        got = block_lowrank_curvature(op, probes, sketch, chunk_size=5)
        errors.append(float((got - exact).abs().max() / exact.abs().max()))
    assert 0 < errors[0] < 1e-3 and errors[1] < 1e-5  # relative error below ε (‖M‖₂ ≈ 5)
    assert errors[1] < errors[0] * 2e-2  # 100× smaller ε: about 100× smaller error


def test_global_lowrank_exact_when_hessian_rank_at_most_r():
    q = 2
    op, probes = _synthetic_op(_low_rank(q)), _synthetic_probes()
    exact = block_curvature(op, probes, chunk_size=4)
    sketch = _random(CTX * q + 1, CTX, D, seed=18)  # rank(H) ≤ ctx·q + 1
    got = global_lowrank_curvature(op, probes, sketch, chunk_size=4)
    torch.testing.assert_close(got, exact, rtol=1e-10, atol=1e-12)
    short = global_lowrank_curvature(op, probes, sketch[: CTX * q], chunk_size=4)
    assert not torch.allclose(short, exact, rtol=1e-3)


def test_lowrank_rejects_bad_rank_and_scope(model, tokens):
    with pytest.raises(ValueError, match="rank must be"):
        lowrank_curvature(model, tokens, rank=0)
    with pytest.raises(TypeError, match="scope"):  # the runtime type check rejects it
        lowrank_curvature(model, tokens, scope=cast(Any, "diagonal"))
    with pytest.raises(ValueError, match="unknown low-rank scope"):
        LowRank(rank=2, scope=cast(Any, "x"))


# ---------------------------------------------------------------- layer


def test_layer_through_all_layers_equals_exact(model, tokens):
    n_layers = model.cfg.n_layers
    exact = H.curvature_sensitivity(model, tokens, n_probes=3, generator=_gen())
    for k in (n_layers, n_layers + 5):  # k is clipped to n_layers: resid_pre of block 0
        got = layer_curvature(model, tokens, k=k, n_probes=3, generator=_gen())
        torch.testing.assert_close(got, exact, **oracle_tolerance(model))


def _explicit_resid_hessian(model, prefix, target_id: int, layer: int) -> torch.Tensor:
    """∇²_Z log P(target | Z), Z = blocks.{layer}.hook_resid_pre, via run_with_hooks."""
    name = f"blocks.{layer}.hook_resid_pre"
    _, cache = model.run_with_cache(prefix[None])
    z0 = cache[name][0].detach()

    def g(z: torch.Tensor) -> torch.Tensor:
        def replace(act, hook):  # noqa: ARG001
            return z[None]

        logits = model.run_with_hooks(prefix[None], fwd_hooks=[(name, replace)])
        return logits[0, -1].log_softmax(-1)[target_id]

    return torch.autograd.functional.hessian(g, z0)


def test_layer_matches_explicit_hessian_at_last_layer(model, tokens):
    target, layer = 5, model.cfg.n_layers - 1
    hess = _explicit_resid_hessian(model, tokens[:target], int(tokens[target]), layer)
    probes = _probes(model, target, 3)
    blocks = torch.stack([hess[i, :, i, :] for i in range(target)])
    expected = torch.einsum("ide,kie->kid", blocks, probes).abs().sum(-1).mean(0)
    got = layer_curvature(model, tokens, target=target, k=1, probes=probes)
    torch.testing.assert_close(got, expected, **oracle_tolerance(model))


def test_curvature_layer_index():
    assert [curvature_layer(4, k) for k in (1, 2, 4, 9)] == [3, 2, 0, 0]
    with pytest.raises(ValueError, match="k must be >= 1"):
        curvature_layer(4, 0)
    with pytest.raises(ValueError, match="k must be >= 1"):
        LayerSampled(k=0)


# ---------------------------------------------------------------- dispatch contract


def _config(estimator: str, **overrides) -> H.HetaConfig:
    spec = {"row": RowBlock(n_probes=3), "lowrank": LowRank(rank=4, n_probes=3)}.get(
        estimator, LayerSampled(k=1, n_probes=3)
    )
    options: dict[str, Any] = {"curvature": spec}
    return H.HetaConfig.flat(**{**options, **overrides})


@pytest.mark.parametrize("estimator", CHEAP)
def test_chunking_and_strategy_do_not_change_the_result(model, tokens, estimator):
    reference = _estimate(model, tokens, _config(estimator, hvp_chunk=64, hvp_strategy="replicate"))
    for chunk, strategy in ((1, "batched_grad"), (5, "replicate"), (7, "batched_grad")):
        config = _config(estimator, hvp_chunk=chunk, hvp_strategy=strategy)
        torch.testing.assert_close(
            _estimate(model, tokens, config), reference, rtol=1e-10, atol=1e-12
        )


@pytest.mark.parametrize("estimator", CHEAP)
def test_deterministic_under_seed(model, tokens, estimator):
    a = _estimate(model, tokens, _config(estimator, seed=7))
    assert torch.equal(a, _estimate(model, tokens, _config(estimator, seed=7)))
    assert not torch.equal(a, _estimate(model, tokens, _config(estimator, seed=8)))


@pytest.mark.parametrize("estimator", CHEAP)
def test_attribute_uses_the_estimator(model, tokens, estimator):
    config = _config(estimator, seed=5)
    direct = {
        "row": lambda: row_curvature(model, tokens, n_probes=3, generator=_gen(5)),
        "lowrank": lambda: lowrank_curvature(model, tokens, rank=4, n_probes=3, generator=_gen(5)),
        "layer": lambda: layer_curvature(model, tokens, k=1, n_probes=3, generator=_gen(5)),
    }[estimator]()
    result = H.attribute(model, tokens, config=config)
    assert result.curvature is not None
    assert result.config.curvature.estimator == estimator
    torch.testing.assert_close(result.curvature, direct, rtol=1e-12, atol=1e-12)


def test_every_curvature_type_is_dispatched_and_other_types_fail(model, tokens):
    adapter = ModelAdapter(model)
    req = prepare(adapter, tokens, None)
    specs = [kind(n_probes=2) for kind in CURVATURE_TYPES.values()]
    with preserved_model_state(model):
        for spec in specs:  # each type reaches its own implementation (no TypeError)
            assert curvature_of(spec, adapter, req, generator=_gen()).shape == (req.target,)
        with pytest.raises(TypeError, match="curvature must be Exact, RowBlock"):
            curvature_of(cast(Any, "exact"), adapter, req)
    with pytest.raises(TypeError, match="HetaConfig.curvature must be"):
        H.HetaConfig(curvature=cast(Any, "spectral"))
    assert Exact().estimator == "exact"


@pytest.mark.parametrize("fn", [row_curvature, lowrank_curvature, layer_curvature])
def test_probes_are_validated(model, tokens, fn):
    d = model.cfg.d_model
    with pytest.raises(ValueError, match="probes must have shape"):
        fn(model, tokens, target=4, probes=torch.ones(2, 3, d, dtype=torch.float64))
    with pytest.raises(TypeError):
        fn(model, tokens, target=4, probes=torch.ones(2, 4, d, dtype=torch.long))
