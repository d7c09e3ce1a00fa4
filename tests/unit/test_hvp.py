from typing import Any, cast

import pytest
import torch

from heta_lens.curvature.hvp import (
    HvpBudgetError,
    HvpOperator,
    auto_chunk_size,
    hessian_vector_products,
    hvp_bytes,
)


def _cubic(x):  # row-wise scalar with a non-trivial, x-dependent Hessian
    return (x**3).sum((-1, -2)) + (x[..., 0, :] * x[..., 1, :]).sum(-1) * x[..., 2, 0]


@pytest.mark.parametrize("strategy", ["replicate", "batched_grad"])
def test_hvp_matches_dense_hessian(strategy):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    vectors = torch.randn(5, 3, 4, generator=gen, dtype=torch.float64)
    hess = torch.autograd.functional.hessian(lambda y: _cubic(y[None])[0], x)
    expected = torch.einsum("pdqe,nqe->npd", hess, vectors)
    got = hessian_vector_products(_cubic, x, vectors, chunk_size=2, strategy=strategy)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_unknown_strategy_rejected():
    with pytest.raises(ValueError, match="unknown HVP strategy"):
        HvpOperator(_cubic, torch.zeros(2, 2), strategy=cast(Any, "forward"))


SMOLLM2 = {"n_layers": 30, "n_heads": 9, "d_model": 576, "d_mlp": 1536, "dtype_bytes": 4}


def test_auto_chunk_size_counts_the_graph_and_each_vector():
    small, large = (auto_chunk_size(**SMOLLM2, ctx=n, budget_gb=4.0) for n in (64, 512))
    assert small > large >= 1
    graph, per_vector = hvp_bytes(**SMOLLM2, ctx=512)
    assert graph + large * per_vector <= 4 * 2**30 < graph + (large + 1) * per_vector
    assert auto_chunk_size(**SMOLLM2, ctx=8, budget_gb=1e6) == 64
    # replicate: every vector carries its own graph
    rep = auto_chunk_size(**SMOLLM2, ctx=512, budget_gb=4.0, strategy="replicate")
    assert rep * (graph + per_vector) <= 4 * 2**30 < (rep + 1) * (graph + per_vector)


def test_a_budget_below_one_vector_is_refused_not_overrun():
    # SmolLM2 at 2,048 tokens: the graph alone is 3 copies of 30 x 9 x 2,048^2 floats (13.5 GB)
    graph, per_vector = hvp_bytes(**SMOLLM2, ctx=2048)
    assert graph > 3 * 30 * 9 * 2048**2 * 4
    with pytest.raises(HvpBudgetError, match=r"more than the HVP memory budget of 4 GB"):
        auto_chunk_size(**SMOLLM2, ctx=2048, budget_gb=4.0)
    needed = (graph + per_vector) / 2**30
    assert auto_chunk_size(**SMOLLM2, ctx=2048, budget_gb=needed * 1.001) == 1
