"""Causal validity of an attribution by activation patching (docs/evaluation.md).

The intervention on context token i patches an activation of position i, taken from a
corrupted run (a full forward with token i's input embedding corrupted), into the clean run;
its effect is the drop of the target's log-probability,

    Δ_i = log P(x_T | x_<T) − E_draws[ log P(x_T | x_<T, site of position i patched) ].

Sites (``site=``, :mod:`heta_lens.evals.metrics.causal_sites`):

- ``"embed"`` (default; the only site of the runs stored before sites existed): the input
  embedding of position i (``hook_embed``). Corrupting a token's embedding and reading the
  prediction is what (embedding) occlusion scores, so this site favours occlusion by
  construction; the other two do not.
- ``"resid:<L>"`` / ``"mid"`` (L = n_layers // 2): the residual stream of position i entering
  block L (``blocks.{L}.hook_resid_pre``), i.e. what positions ≤ i have written into
  position i by then, with token i corrupted. ``resid:0`` is the ``embed`` intervention
  (block 0's input at i is a position-wise function of token i's embedding: the embedding,
  plus the positional embedding where the model has one; tested equal).
- ``"edges"``: the attention edges i → q, q = T − 1 the readout position: in every layer and
  every head, query q reads position i's key *and* value from the corrupted run, every other
  position keeps its clean state (:mod:`heta_lens.hooks.patching`). This is path patching of
  the edges from sender i into receiver q (Wang et al. 2022; Conmy et al. 2023's edge
  patching, where a receiver's K and V inputs from a sender are patched): the softmax is
  renormalised with the corrupted key, so a token that matters by being attended to (its key)
  counts as much as one that matters by what it carries (its value). Not patched: what i
  reaches q through other positions (i → j → q), and token q's own residual path. (Why not
  the other readings: :mod:`~heta_lens.evals.metrics.causal_sites`.)

The resid and edges sites cost two forwards per patched batch (the corrupted run, then the
patched run) where ``embed`` costs one.

Corruption (``corruption=``):

- ``"noise"`` (default, Meng et al. 2022's causal tracing): e_i + ε, ε ~ N(0, (c·σ)² I) with
  c = ``noise_scale`` (3, as in their paper) and σ the standard deviation of all entries of the
  embedding matrix (at ``hook_embed`` scale); averaged over ``n_draws`` draws.
- ``"zero"`` | ``"mean"`` | ``"token:<id>"``: the deterministic replacements of
  :func:`heta_lens.masking.mask_rows` (one draw).

Every draw's corrupted rows are kept in :class:`TokenEffects`, so all methods of one target are
scored against the *same* interventions, and the single-token effects (method independent) are
computed once per target and site. At ``embed`` (layer 0) and at ``resid:<L>`` they equal
TransformerLens's ``transformer_lens.patching.get_act_patch_resid_pre`` at that layer
(tested), computed in batched forwards instead of one forward per position.

From the effects and a method's scores:

- **Patch-Corr** = Spearman ρ(scores, Δ) over all context positions (average ranks for ties;
  NaN when the scores are constant). The BOS/sink position is included: patching it is a real
  intervention, and a method that ranks it is judged on what patching it does.
- **Intervention@k** = Δlog P when the top-k positions (by score; ties → earlier position) are
  patched together (k = 5; higher = the top tokens matter more): one corrupted run with all k
  tokens corrupted, its site activations at the k positions patched in (at ``embed``: the k
  embeddings corrupted together).
- **Misattribution** = share of the top-``top`` positions (10) whose single-token Δ < τ (0.01
  nats): highly ranked tokens whose intervention barely moves the prediction (lower = better).
"""

import re
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor, nn

from heta_lens._typing import TokensLike, typechecked
from heta_lens.evals.metrics._common import ranking, replaced, validated
from heta_lens.evals.metrics.causal_sites import (
    EMBED_SITE,
    clean_log_probs,
    clean_states,
    patched_log_probs,
    resolve_site,
)
from heta_lens.evals.metrics.rank import spearman
from heta_lens.hooks import ModelAdapter, preserved_model_state
from heta_lens.hooks.patching import PatchSite
from heta_lens.inputs import Prepared
from heta_lens.masking import mask_rows


@dataclass(frozen=True, kw_only=True)
class TokenEffects:
    """Single-token intervention effects of one target, and the interventions used.

    Attributes:
        delta: Δ_i, the drop of log P(target) when position i alone is corrupted, ``[ctx]``.
        log_p_clean: log P(target) of the clean run.
        clean: Clean input embeddings of the context, ``[ctx, d_model]``.
        corrupted: Corrupted embeddings per draw, ``[draw, ctx, d_model]``.
        corruption: The corruption scheme.
        site: Where the corrupted run is patched in (module docstring).
    """

    delta: Float[Tensor, " ctx"]
    log_p_clean: float
    clean: Float[Tensor, "ctx d_model"]
    corrupted: Float[Tensor, "draw ctx d_model"]
    corruption: str
    site: str = EMBED_SITE


@dataclass(frozen=True, kw_only=True)
class CausalScores:
    """Causal-validity scores of one attribution (see the module docstring).

    Attributes:
        patch_corr: Spearman ρ(scores, Δ); NaN for constant scores.
        intervention_at_k: Δlog P with the top-k positions corrupted together.
        misattribution: Share of the top-``top`` positions with Δ < ``tau``.
        k: Tokens corrupted together for ``intervention_at_k`` (capped at ctx).
        top: Top positions checked for misattribution (capped at ctx).
        tau: Misattribution threshold in nats.
    """

    patch_corr: float
    intervention_at_k: float
    misattribution: float
    k: int
    top: int
    tau: float


def check_corruption(corruption: str) -> str:
    """Validate a corruption name (``noise``, ``zero``, ``mean`` or ``token:<id>``)."""
    if corruption in ("noise", "zero", "mean") or re.fullmatch(r"token:\d+", corruption):
        return corruption
    raise ValueError(f"unknown corruption {corruption!r}; valid: noise, zero, mean, token:<id>")


@typechecked
def token_effects(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: int,
    corruption: str = "noise",
    noise_scale: float = 3.0,
    n_draws: int = 4,
    generator: torch.Generator | None = None,
    batch: int = 64,
    site: str = EMBED_SITE,
) -> TokenEffects:
    """Δlog P(target) of patching each context position alone from a corrupted run.

    Args:
        model: A ``HookedTransformer`` or ``TransformerBridge``.
        tokens: Token ids (or a string) containing the target.
        target: Index of the explained token; the context is ``tokens[:target]``.
        corruption: ``"noise"``, ``"zero"``, ``"mean"`` or ``"token:<id>"``.
        noise_scale: c in ε ~ N(0, (c·σ)²) for ``"noise"``.
        n_draws: Noise draws averaged (``"noise"`` only; the others are deterministic).
        generator: Source of the noise (CPU generator; default: a fresh one seeded 0).
        batch: Sequences per forward.
        site: ``"embed"``, ``"mid"``, ``"resid:<layer>"`` or ``"edges"`` (module docstring).
            The corrupted embeddings do not depend on it: under one generator seed every
            site patches from the same corrupted runs.

    Returns:
        :class:`TokenEffects`.

    Raises:
        ValueError: Bad tokens/target, unknown corruption or site, a ``resid`` layer outside
            the model, ``n_draws < 1`` or ``noise_scale <= 0``.
    """
    check_corruption(corruption)
    if n_draws < 1:
        raise ValueError(f"n_draws must be >= 1; got {n_draws}")
    if noise_scale <= 0:
        raise ValueError(f"noise_scale must be > 0; got {noise_scale}")
    adapter, req, _ = validated(model, tokens, target=target, scores=torch.zeros(target))
    where = resolve_site(site, adapter.n_layers)
    ctx = req.target
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    with preserved_model_state(model), torch.no_grad():
        x = adapter.embed(req.prefix[None])[0]
        if corruption == "noise":
            sigma = noise_scale * adapter.embedding_std()
            eps = torch.randn((n_draws, *x.shape), generator=gen, dtype=torch.float64)
            corrupted = x[None] + (sigma * eps).to(device=x.device, dtype=x.dtype)
        else:
            corrupted = mask_rows(adapter, x, corruption)[None]
        log_p, clean = clean_log_probs(adapter, req, x, where)
        log_p_clean = float(log_p[req.target_id])
        eye = torch.eye(ctx, dtype=torch.bool, device=x.device)
        patched = torch.stack(
            [
                _target_log_probs(adapter, req, x, rows, eye, batch=batch, site=where, clean=clean)
                for rows in corrupted
            ]
        )
    return TokenEffects(
        delta=(log_p_clean - patched.mean(0)).cpu(),
        log_p_clean=log_p_clean,
        clean=x,
        corrupted=corrupted,
        corruption=corruption,
        site=site,
    )


def _target_log_probs(
    adapter: ModelAdapter,
    req: Prepared,
    x: Tensor,
    corrupted: Tensor,
    drops: Tensor,
    *,
    batch: int,
    site: PatchSite,
    clean: dict[str, Tensor],
) -> Tensor:
    """log P(target) for each row of ``drops`` (those positions patched at ``site`` from the
    run with them replaced by ``corrupted``)."""
    out = []
    for start in range(0, drops.shape[0], batch):
        drop = drops[start : start + batch]
        rows = replaced(x, corrupted, drop)
        log_p = patched_log_probs(adapter, req, x, rows, drop, site=site, clean=clean)
        out.append(log_p[:, req.target_id].double())
    return torch.cat(out)


@typechecked
def group_effect(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: int,
    positions: Tensor,
    effects: TokenEffects,
) -> float:
    """Δlog P(target) when ``positions`` are patched together (same draws and site as
    ``effects``)."""
    adapter, req, _ = validated(model, tokens, target=target, scores=torch.zeros(target))
    where = resolve_site(effects.site, adapter.n_layers)
    drop = torch.zeros(1, req.target, dtype=torch.bool, device=effects.clean.device)
    drop[0, positions.to(drop.device)] = True
    with preserved_model_state(model), torch.no_grad():
        clean = clean_states(adapter, req, effects.clean, where)
        patched = torch.stack(
            [
                _target_log_probs(
                    adapter, req, effects.clean, rows, drop, batch=1, site=where, clean=clean
                )[0]
                for rows in effects.corrupted
            ]
        )
    return effects.log_p_clean - float(patched.mean())


@typechecked
def causal_scores(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: int,
    scores: Float[Tensor, " ctx"],
    effects: TokenEffects,
    k: int = 5,
    top: int = 10,
    tau: float = 0.01,
) -> CausalScores:
    """Patch-Corr, Intervention@k and misattribution of ``scores`` (module docstring).

    Args:
        model: The model ``effects`` was computed on.
        tokens: The same tokens.
        target: The same target.
        scores: One score per context token, ``[ctx]``.
        effects: :func:`token_effects` of this target.
        k: Tokens corrupted together for Intervention@k.
        top: Top positions checked for misattribution.
        tau: Misattribution threshold (nats).

    Raises:
        ValueError: ``scores``/``effects`` do not match the context, or k/top < 1.

    Examples:
        >>> from heta_lens.testing import tiny_bridge
        >>> model, toks = tiny_bridge(), torch.tensor([1, 5, 7, 3, 9])
        >>> fx = token_effects(model, toks, target=4, corruption="zero")
        >>> res = causal_scores(model, toks, target=4, scores=fx.delta.clone(), effects=fx, k=2)
        >>> round(res.patch_corr, 6), res.k, res.top
        (1.0, 2, 4)
    """
    if k < 1 or top < 1:
        raise ValueError(f"k and top must be >= 1; got k={k}, top={top}")
    _, req, raw = validated(model, tokens, target=target, scores=scores)
    if effects.delta.numel() != req.target:
        raise ValueError(
            f"effects are for a context of {effects.delta.numel()} tokens, not {req.target}"
        )
    order = ranking(raw.cpu())
    k, top = min(k, req.target), min(top, req.target)
    delta = effects.delta
    return CausalScores(
        patch_corr=spearman(raw.cpu(), delta) if req.target >= 2 else float("nan"),
        intervention_at_k=group_effect(
            model, tokens, target=target, positions=order[:k], effects=effects
        ),
        misattribution=float((delta[order[:top]] < tau).double().mean()),
        k=k,
        top=top,
        tau=tau,
    )
