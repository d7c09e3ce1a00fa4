"""Contrast / Span / Metric targets against independent oracles, on both model types.

Curvature: explicit float64 Hessians of f (``torch.autograd.functional.hessian`` through
``run_with_hooks``, raw logits, no adapter). Information: one plain forward per masked copy.
Gate: brute-force path enumeration.
"""

import pytest
import torch

import heta_lens as H
from heta_lens.curvature.probes import rademacher_probes
from heta_lens.targets import Contrast, Metric, Span
from tests.conftest import oracle_tolerance
from tests.unit import oracles

MODES = ("rollout", "attention", "full_rollout", "uniform")


def _probes(model, ctx: int, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return rademacher_probes(2, ctx, model.cfg.d_model, generator=gen, dtype=torch.float64)


def _curvature_from_hessian(hess: torch.Tensor, probes: torch.Tensor) -> torch.Tensor:
    blocks = torch.stack([hess[i, :, i, :] for i in range(hess.shape[0])])  # H_ii
    return torch.einsum("ide,kie->kid", blocks, probes).abs().sum(-1).mean(0)


def _metrics(model) -> dict[str, tuple[str, object]]:
    """A residual direction, a head's output norm and an SAE latent's pre-activation."""
    gen = torch.Generator().manual_seed(7)
    d, last = model.cfg.d_model, model.cfg.n_layers - 1
    direction = torch.randn(d, generator=gen, dtype=torch.float64)
    w_enc, b_enc = (
        torch.randn(d, 3, generator=gen, dtype=torch.float64),
        torch.randn(3, generator=gen, dtype=torch.float64),
    )
    return {
        "direction": (f"blocks.{last}.hook_resid_post", lambda a: a @ direction),
        "head_norm": ("blocks.0.attn.hook_z", lambda a: a[1].norm()),
        "sae_latent": (f"blocks.{last}.hook_resid_pre", lambda a: (a @ w_enc + b_enc)[2]),
    }


# ------------------------------------------------------------------------------- contrast
@pytest.mark.parametrize("position", [-1, 4])
def test_contrast_curvature_matches_explicit_hessian(model, tokens, position):
    ctx = position % tokens.numel() + 1
    probes = _probes(model, ctx)
    got = H.curvature_sensitivity(
        model, tokens, target=Contrast(5, 8, position=position), probes=probes
    )

    def f(logits, _act):
        return logits[-1, 5] - logits[-1, 8]

    hess = oracles.explicit_hessian_of(model, tokens[:ctx], ctx, f)
    torch.testing.assert_close(
        got, _curvature_from_hessian(hess, probes), **oracle_tolerance(model)
    )


@pytest.mark.parametrize("strategy", ["prefix", "batched"])
def test_contrast_information_matches_explicit_reruns(model, tokens, strategy):
    got = H.information_gain(model, tokens, target=Contrast(5, 8), strategy=strategy)

    def pair(orig, masked):
        return oracles.two_way_kl(orig[0][-1], masked[0][-1], 5, 8)

    expected = oracles.explicit_information_of(model, tokens, tokens.numel(), pair)
    torch.testing.assert_close(got, expected, **oracle_tolerance(model))


def test_contrast_vocab_kl_is_the_token_information(model, tokens):
    got = H.information_gain(model, tokens, target=Contrast(5, 8, position=4, kl="vocab"))
    torch.testing.assert_close(got, H.information_gain(model, tokens, target=5), rtol=0, atol=0)


@pytest.mark.parametrize("mode", MODES)
def test_contrast_gate_matches_brute_force(model, tokens, mode):
    got = H.semantic_gate(model, tokens, target=Contrast(5, 8, position=4), mode=mode)
    pattern, v, W_O = oracles.capture(model, tokens[:5])
    expected = oracles.brute_force_gate(pattern, v, W_O, t=4, mode=mode)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------------- span
def test_span_curvature_matches_explicit_hessian(model, tokens):
    prompt, span = tokens[:5], (3, 9, 11)
    probes = _probes(model, 5)
    got = H.curvature_sensitivity(model, prompt, target=Span(span), probes=probes)
    run = torch.cat([prompt, torch.tensor(span[:-1])])

    def f(logits, _act):
        log_p = logits.log_softmax(-1)
        return sum(log_p[4 + j, y] for j, y in enumerate(span))

    hess = oracles.explicit_hessian_of(model, run, 5, f)
    torch.testing.assert_close(
        got, _curvature_from_hessian(hess, probes), **oracle_tolerance(model)
    )


def test_span_information_matches_explicit_reruns(model, tokens):
    prompt, span = tokens[:5], (3, 9, 11)
    got = H.information_gain(model, prompt, target=Span(span))
    run = torch.cat([prompt, torch.tensor(span[:-1])])

    def summed_kl(orig, masked):
        p, q = orig[0][4:].log_softmax(-1), masked[0][4:].log_softmax(-1)
        return torch.nn.functional.kl_div(q, p, log_target=True, reduction="sum")

    expected = oracles.explicit_information_of(model, run, 5, summed_kl)
    torch.testing.assert_close(got, expected, **oracle_tolerance(model))


@pytest.mark.parametrize("mode", MODES)
def test_span_gate_matches_brute_force(model, tokens, mode):
    prompt, span = tokens[:5], (3, 9, 11)
    got = H.semantic_gate(model, prompt, target=Span(span), mode=mode)
    pattern, v, W_O = oracles.capture(model, torch.cat([prompt, torch.tensor(span[:-1])]))
    expected = oracles.span_gate(pattern, v, W_O, n=5, k=3, mode=mode)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------------- metric
@pytest.mark.parametrize("which", ["direction", "head_norm", "sae_latent"])
def test_metric_curvature_matches_explicit_hessian(model, tokens, which):
    hook, fn = _metrics(model)[which]
    probes = _probes(model, 6)
    got = H.curvature_sensitivity(model, tokens, target=Metric(hook, fn, position=5), probes=probes)
    hess = oracles.explicit_hessian_of(model, tokens[:6], 6, lambda _l, act: fn(act[-1]), hook)
    torch.testing.assert_close(
        got, _curvature_from_hessian(hess, probes), **oracle_tolerance(model)
    )


@pytest.mark.parametrize("which", ["direction", "head_norm", "sae_latent"])
def test_metric_information_is_the_explicit_change_of_f(model, tokens, which):
    hook, fn = _metrics(model)[which]
    got = H.information_gain(model, tokens, target=Metric(hook, fn, position=5))

    def change(orig, masked):
        return (fn(orig[1][-1]) - fn(masked[1][-1])).abs()

    expected = oracles.explicit_information_of(model, tokens[:6], 6, change, hook)
    torch.testing.assert_close(got, expected, **oracle_tolerance(model))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("which", ["direction", "head_norm", "sae_latent"])
def test_metric_gate_rolls_out_the_layers_below_the_hook(model, tokens, mode, which):
    hook, fn = _metrics(model)[which]
    layers = {"direction": model.cfg.n_layers, "head_norm": 1, "sae_latent": model.cfg.n_layers - 1}
    got = H.semantic_gate(model, tokens, target=Metric(hook, fn, position=5), mode=mode)
    pattern, v, W_O = oracles.capture(model, tokens[:6])
    n = layers[which]
    if n == 0:  # no attention below the hook: only the position itself reaches it
        expected = torch.zeros(6, dtype=torch.float64)
        expected[5] = 1.0
    else:
        expected = oracles.brute_force_gate(pattern[:n], v[:n], W_O[:n], t=5, mode=mode)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
