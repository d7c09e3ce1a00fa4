import pytest
import torch

import heta_lens as H
from heta_lens.curvature.probes import rademacher_probes
from tests.conftest import oracle_tolerance
from tests.unit import oracles


def _oracle_curvature(model, tokens, target, probes):
    hess = oracles.explicit_hessian(model, tokens[:target], int(tokens[target]))
    blocks = torch.stack([hess[i, :, i, :] for i in range(target)])  # H_ii
    hv = torch.einsum("ide,kie->kid", blocks, probes)
    return hv.abs().sum(-1).mean(0)


def test_fixed_probes_match_explicit_hessian(model, tokens):
    target = 5
    probes = rademacher_probes(
        3,
        target,
        model.cfg.d_model,
        generator=torch.Generator().manual_seed(1),
        dtype=torch.float64,
    )
    got = H.curvature_sensitivity(model, tokens, target=target, probes=probes)
    torch.testing.assert_close(
        got, _oracle_curvature(model, tokens, target, probes), **oracle_tolerance(model)
    )


def test_arbitrary_real_probes_are_averaged_exactly(model, tokens):
    target = 4
    probes = torch.randn(
        2,
        target,
        model.cfg.d_model,
        generator=torch.Generator().manual_seed(2),
        dtype=torch.float64,
    )
    got = H.curvature_sensitivity(model, tokens, target=target, probes=probes)
    torch.testing.assert_close(
        got, _oracle_curvature(model, tokens, target, probes), **oracle_tolerance(model)
    )


@pytest.mark.parametrize("strategy", ["replicate", "batched_grad"])
@pytest.mark.parametrize("chunk_size", [1, 5, 64])
def test_strategies_and_chunking_agree(model, tokens, strategy, chunk_size):
    reference = H.curvature_sensitivity(
        model, tokens, n_probes=3, chunk_size=64, strategy="replicate"
    )
    got = H.curvature_sensitivity(
        model, tokens, n_probes=3, chunk_size=chunk_size, strategy=strategy
    )
    torch.testing.assert_close(got, reference, rtol=1e-10, atol=1e-12)


def test_seeded_generator_is_deterministic(model, tokens):
    a = H.curvature_sensitivity(
        model, tokens, n_probes=2, generator=torch.Generator().manual_seed(7)
    )
    b = H.curvature_sensitivity(
        model, tokens, n_probes=2, generator=torch.Generator().manual_seed(7)
    )
    c = H.curvature_sensitivity(
        model, tokens, n_probes=2, generator=torch.Generator().manual_seed(8)
    )
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(
        H.curvature_sensitivity(model, tokens, n_probes=2),
        H.curvature_sensitivity(model, tokens, n_probes=2),
    )


def test_curvature_ignores_tokens_after_target(model, tokens):
    changed = tokens.clone()
    changed[5:] = 2
    assert torch.equal(
        H.curvature_sensitivity(model, tokens, target=4, n_probes=2),
        H.curvature_sensitivity(model, changed, target=4, n_probes=2),
    )


def test_probe_shape_and_dtype_validated(model, tokens):
    d = model.cfg.d_model
    with pytest.raises(ValueError, match="probes must have shape"):
        H.curvature_sensitivity(
            model, tokens, target=4, probes=torch.ones(2, 3, d, dtype=torch.float64)
        )
    with pytest.raises(TypeError):
        H.curvature_sensitivity(
            model, tokens, target=4, probes=torch.ones(2, 4, d, dtype=torch.long)
        )
