from typing import Any, cast

import pytest
import torch

from heta_lens.curvature.hvp import HvpOperator, hessian_vector_products


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


def test_auto_chunk_size_respects_budget_and_bounds():
    from heta_lens.curvature.hvp import auto_chunk_size

    smollm2 = {"n_layers": 30, "n_heads": 9, "d_model": 576, "d_mlp": 1536, "dtype_bytes": 4}
    small, large = (auto_chunk_size(**smollm2, ctx=n, budget_gb=4.0) for n in (64, 512))
    assert small > large >= 1
    per_hvp_512 = 30 * (9 * 512 * 512 + 10 * 512 * (576 + 1536)) * 4
    assert large * per_hvp_512 <= 4 * 2**30 < (large + 1) * per_hvp_512
    assert auto_chunk_size(**smollm2, ctx=8, budget_gb=1e6) == 64
    assert auto_chunk_size(**smollm2, ctx=4096, budget_gb=0.001) == 1
