"""Oracle checks one architecture must pass, shared by the architecture matrices.

Each check runs HETA's public component functions on a model and compares them with an
independent oracle from :mod:`tests.unit.oracles` (TransformerLens's own ``run_with_cache`` /
``run_with_hooks``, explicit float64 Hessians, explicit reruns, brute-force path enumeration).
A check takes the target as an int (the index of the predicted token in ``tokens``) or a
``Contrast`` at the last position of ``tokens``.
"""

from __future__ import annotations

import copy

import torch

import heta_lens as H
from heta_lens.curvature.probes import rademacher_probes
from heta_lens.hooks.guard import hook_point_hook_count
from heta_lens.targets import Contrast
from tests.unit import oracles

Target = int | Contrast

FLOAT32_TOLERANCES: dict[str, dict[str, float]] = {
    "gate": {"rtol": 1e-5, "atol": 0.0},
    "curvature": {"rtol": 1e-5, "atol": 0.0},
    "information": {"rtol": 1e-5, "atol": 2e-6},
}
"""A component computed in float32 against the float64 oracle of the same weights. Measured on
the tiny models of tests/conftest.py (LN, attention-only, GQA HookedTransformers and the Llama
bridge) in bfloat16 and float16 (computed in float32 by the half-precision rule), tokens
[1, 5, 7, 3, 9, 11, 4], targets 6 and 4: largest relative error 3.1e-7 (gate), 5.4e-7
(curvature); information, largest absolute error 2.5e-7 nats (relative errors reach 5e-3 only
where I is ~3e-5, hence an absolute floor). Each bound sits 8-30x above its floor."""


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


def on_device_of(model, tokens: torch.Tensor) -> torch.Tensor:
    """``tokens`` on the device of ``model``'s weights. (The oracles create some tensors on
    the CPU: a reference model for a CUDA one is a CPU copy.)"""
    return tokens.to(next(model.parameters()).device)


def fixed_probes(n: int, d_model: int) -> torch.Tensor:
    """Two Rademacher probes [2, n, d_model] from a generator seeded with 1 (float64)."""
    gen = torch.Generator().manual_seed(1)
    return rademacher_probes(2, n, d_model, generator=gen, dtype=torch.float64)


def oracle_gate(model, tokens, target: Target, *, mode: str = "rollout") -> torch.Tensor:
    """The gate by brute-force enumeration of every causal path (TL's own cache for A, V, W_O),
    computed in ``model``'s dtype."""
    ctx = context_of(tokens, target)
    pattern, v, w_o = oracles.capture(model, ctx)
    return oracles.brute_force_gate(pattern, v, w_o, t=ctx.numel() - 1, mode=mode)


def oracle_curvature(
    model, tokens, target: Target, probes: torch.Tensor, *, vectorize: bool = False
) -> torch.Tensor:
    """Eq. 3 with ``probes`` from the explicit Hessian's diagonal blocks (``model``'s dtype;
    ``vectorize``: build the Hessian under vmap, as :func:`oracles.explicit_hessian_of`)."""
    ctx = context_of(tokens, target)
    f = scalar_of(tokens, target)
    hess = oracles.explicit_hessian_of(model, ctx, ctx.numel(), f, vectorize=vectorize)
    blocks = torch.stack([hess[i, :, i, :] for i in range(ctx.numel())])
    return torch.einsum("ide,kie->kid", blocks, probes.to(blocks)).abs().sum(-1).mean(0)


def oracle_information(model, tokens, target: Target) -> torch.Tensor:
    """Information (zero mask), one plain full forward per masked copy (``model``'s dtype)."""
    ctx = context_of(tokens, target)
    if isinstance(target, int):

        def divergence(orig, masked):
            p, q = orig[0][-1].log_softmax(-1), masked[0][-1].log_softmax(-1)
            return torch.nn.functional.kl_div(q, p, log_target=True, reduction="sum")
    else:
        answer, foil = int(target.answer), int(target.foil)

        def divergence(orig, masked):
            return oracles.two_way_kl(orig[0][-1], masked[0][-1], answer, foil)

    return oracles.explicit_information_of(model, ctx, ctx.numel(), divergence)


def check_gate(
    model, tokens, target: Target, *, mode: str = "rollout", reference=None, **tol
) -> None:
    """Gate vs brute-force enumeration of every causal path (TL's own cache for A, V, W_O).

    ``reference``: the model the oracle runs on (default ``model``; e.g. a float64 copy of a
    half-precision model, or a CPU copy of a CUDA one)."""
    got = H.semantic_gate(model, tokens, target=target, mode=mode)
    ref = reference or model
    expected = oracle_gate(ref, on_device_of(ref, tokens), target, mode=mode)
    tol = tol or {"rtol": 1e-10, "atol": 1e-12}
    torch.testing.assert_close(got.to(expected), expected, **tol)


def check_curvature(
    model, tokens, target: Target, *, reference=None, vectorize: bool = False, **tol
) -> None:
    """Exact-estimator curvature with fixed probes vs the explicit float64 Hessian's blocks
    (of ``reference``, default ``model``; ``vectorize``: the oracle's Hessian under vmap)."""
    ctx = context_of(tokens, target)
    probes = fixed_probes(ctx.numel(), model.cfg.d_model)
    got = H.curvature_sensitivity(model, tokens, target=target, probes=probes)
    ref = reference or model
    expected = oracle_curvature(ref, on_device_of(ref, tokens), target, probes, vectorize=vectorize)
    torch.testing.assert_close(got.to(expected), expected, **tol)


def check_information(
    model,
    tokens,
    target: Target,
    *,
    strategy: str = "prefix",
    chunk_size: int = 16,
    reference=None,
    **tol,
) -> None:
    """Information (zero mask) vs one plain full forward per masked copy (of ``reference``,
    default ``model``).

    The prefix strategy reuses a key/value cache only for chunks that start after position 0:
    a ``chunk_size`` below the context length is what exercises it (1: every masked row runs
    on a cache of all positions before it).
    """
    got = H.information_gain(model, tokens, target=target, strategy=strategy, chunk_size=chunk_size)
    ref = reference or model
    expected = oracle_information(ref, on_device_of(ref, tokens), target)
    torch.testing.assert_close(got.to(expected), expected, **tol)


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


def upcast_copy(model, dtype: torch.dtype = torch.float64):
    """A copy of ``model`` with every floating weight cast to ``dtype`` (exact for an upcast;
    TransformerLens's ``.to`` updates ``cfg.dtype`` too), on the same device."""
    return copy.deepcopy(model).to(dtype, print_details=False)


def check_components(model, tokens, target: Target, *, reference, tolerances) -> None:
    """Gate, curvature and information of ``model`` against the oracles run on ``reference``,
    each at ``tolerances[component]``."""
    check_gate(model, tokens, target, reference=reference, **tolerances["gate"])
    check_curvature(model, tokens, target, reference=reference, **tolerances["curvature"])
    check_information(model, tokens, target, reference=reference, **tolerances["information"])


def snapshot(model) -> tuple[dict[str, tuple[torch.Tensor, int, torch.Tensor]], list[object]]:
    """Every parameter and buffer by name (the tensor object, its storage address and a copy),
    then every TransformerLens ``cfg.dtype`` and the hook count."""
    named = [*model.named_parameters(), *model.named_buffers()]
    tensors = {name: (t, t.data_ptr(), t.detach().clone()) for name, t in named}
    cfgs = [getattr(getattr(m, "cfg", None), "dtype", None) for m in model.modules()]
    return tensors, [*cfgs, hook_point_hook_count(model)]


def assert_restored(model, before, dtype: torch.dtype) -> None:
    """The same tensor objects at the same addresses, bit-identical (same dtype, equal
    values), the same ``cfg.dtype``s and no hook left."""
    (tensors, meta), (was, was_meta) = snapshot(model), before
    assert meta == was_meta
    assert tensors.keys() == was.keys()
    for name, (tensor, ptr, value) in tensors.items():
        old, old_ptr, old_value = was[name]
        assert tensor is old and ptr == old_ptr and value.dtype == old_value.dtype, name
        assert torch.equal(value, old_value), name
    assert {p.dtype for p in model.parameters()} == {dtype}
