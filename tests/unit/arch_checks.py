"""Oracle checks one architecture must pass, shared by the architecture matrices.

Each check runs HETA's public component functions on a model and compares them with an
independent oracle from :mod:`tests.unit.oracles` (TransformerLens's own ``run_with_cache`` /
``run_with_hooks``, explicit float64 Hessians, explicit reruns, brute-force path enumeration).
A check takes the target as an int (the index of the predicted token in ``tokens``) or a
``Contrast`` at the last position of ``tokens``.
"""

from __future__ import annotations

import torch

import heta_lens as H
from heta_lens.curvature.probes import rademacher_probes
from heta_lens.targets import Contrast
from tests.unit import oracles

Target = int | Contrast


def context_of(tokens: torch.Tensor, target: Target) -> torch.Tensor:
    """The tokens the target is explained from (the prefix of an int target)."""
    return tokens[:target] if isinstance(target, int) else tokens


def scalar_of(tokens: torch.Tensor, target: Target):
    """f(logits [pos, vocab]) the target explains, at the last context position."""
    if isinstance(target, int):
        token = int(tokens[target])
        return lambda logits, _act: logits[-1].log_softmax(-1)[token]
    answer, foil = int(target.answer), int(target.foil)
    return lambda logits, _act: logits[-1, answer] - logits[-1, foil]


def check_gate(model, tokens, target: Target, *, mode: str = "rollout", **tol) -> None:
    """Gate vs brute-force enumeration of every causal path (TL's own cache for A, V, W_O)."""
    ctx = context_of(tokens, target)
    got = H.semantic_gate(model, tokens, target=target, mode=mode)
    pattern, v, w_o = oracles.capture(model, ctx)
    expected = oracles.brute_force_gate(pattern, v, w_o, t=ctx.numel() - 1, mode=mode)
    torch.testing.assert_close(got, expected, **(tol or {"rtol": 1e-10, "atol": 1e-12}))


def check_curvature(model, tokens, target: Target, *, vectorize: bool = False, **tol) -> None:
    """Exact-estimator curvature with fixed probes vs the explicit float64 Hessian's blocks
    (``vectorize``: build the Hessian under vmap, as :func:`oracles.explicit_hessian_of`)."""
    ctx = context_of(tokens, target)
    n, d = ctx.numel(), model.cfg.d_model
    probes = rademacher_probes(
        2, n, d, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    got = H.curvature_sensitivity(model, tokens, target=target, probes=probes)
    hess = oracles.explicit_hessian_of(
        model, ctx, n, scalar_of(tokens, target), vectorize=vectorize
    )
    blocks = torch.stack([hess[i, :, i, :] for i in range(n)])
    expected = torch.einsum("ide,kie->kid", blocks, probes.to(blocks.dtype)).abs().sum(-1).mean(0)
    torch.testing.assert_close(got.to(expected.dtype), expected, **tol)


def check_information(
    model, tokens, target: Target, *, strategy: str = "prefix", chunk_size: int = 16, **tol
) -> None:
    """Information (zero mask) vs one plain full forward per masked copy.

    The prefix strategy reuses a key/value cache only for chunks that start after position 0:
    a ``chunk_size`` below the context length is what exercises it (1: every masked row runs
    on a cache of all positions before it).
    """
    ctx = context_of(tokens, target)
    got = H.information_gain(model, tokens, target=target, strategy=strategy, chunk_size=chunk_size)
    if isinstance(target, int):

        def divergence(orig, masked):
            p, q = orig[0][-1].log_softmax(-1), masked[0][-1].log_softmax(-1)
            return torch.nn.functional.kl_div(q, p, log_target=True, reduction="sum")
    else:
        answer, foil = int(target.answer), int(target.foil)

        def divergence(orig, masked):
            return oracles.two_way_kl(orig[0][-1], masked[0][-1], answer, foil)

    expected = oracles.explicit_information_of(model, ctx, ctx.numel(), divergence)
    torch.testing.assert_close(got.to(expected.dtype), expected, **tol)


def _output_norms(model) -> list[torch.nn.Module] | None:
    """The modules a HookedTransformer passes each layer's attention output through before the
    residual add (Gemma 2/3's ``ln1_post``, the post-norm ``ln1`` of OLMo 2/3), or None."""
    from heta_lens.hooks import model_kind

    if model_kind(model) != "hooked":
        return None
    from transformer_lens.utilities.architectures import POST_NORM_ARCHITECTURES

    if model.cfg.use_normalization_before_and_after:
        return [block.ln1_post for block in model.blocks]
    if model.cfg.original_architecture in POST_NORM_ARCHITECTURES:
        return [block.ln1 for block in model.blocks]
    return None


def attention_outputs(model, ids: torch.Tensor) -> list[torch.Tensor]:
    """Each layer's Σ_h A·V·W_O + b_O as the model computes it, ``[pos, d_model]``: its
    ``hook_attn_out``, or, where the block normalises the attention output before adding it to
    the residual stream, the input of that norm (a PyTorch forward pre-hook, removed after)."""
    norms = _output_norms(model)
    if norms is None:
        _, cache = model.run_with_cache(ids[None])
        points = []
        for layer in range(model.cfg.n_layers):
            post_norm_in = f"blocks.{layer}.ln1_post.hook_in"  # a bridge's post-attention norm
            plain = f"blocks.{layer}.hook_attn_out"
            points.append(post_norm_in if post_norm_in in cache else plain)
        return [cache[point][0] for point in points]
    store: list[torch.Tensor] = []
    handles = [
        m.register_forward_pre_hook(lambda _m, args: store.append(args[0][0].detach()))
        for m in norms
    ]
    try:
        with torch.no_grad():
            model(ids[None], return_type=None)
    finally:
        for handle in handles:
            handle.remove()
    assert len(store) == model.cfg.n_layers, "each output norm runs once per forward"
    return store


def check_attention_output(model, ids: torch.Tensor, **tol) -> None:
    """Σ_h A·V·W_O (+ b_O) from HETA's capture equals the model's attention output.

    This pins what the gate reads (pattern, values expanded to query heads, ``W_O``) to what
    the model's attention actually computes (``hook_attn_out``; before the output norm of a
    block that has one, HookedTransformer or bridge: :func:`attention_outputs`), independently
    of the gate's code.
    """
    from heta_lens.hooks import ModelAdapter

    capture = ModelAdapter(model).capture_attention(ids)
    outputs = attention_outputs(model, ids)
    for layer in range(model.cfg.n_layers):
        z = torch.einsum("hqk,khd->qhd", capture.pattern[layer], capture.v[layer])
        out = torch.einsum("phd,hdm->pm", z, capture.W_O[layer])
        try:
            b_o = model.b_O
        except (AttributeError, TypeError):  # TL 3.9 bridge: stacking a bias-free model's None
            b_o = None
        if b_o is not None:
            out = out + b_o[layer]
        torch.testing.assert_close(out, outputs[layer], **(tol or {"rtol": 1e-10, "atol": 1e-12}))
