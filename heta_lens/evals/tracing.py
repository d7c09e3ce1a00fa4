"""Causal tracing (Meng et al., 2022) with TransformerLens's activation-patching utilities.

The corrupted run adds Gaussian noise ε ~ N(0, (c·σ)² I) to the input embeddings of the
``corrupt`` positions (c = 3, σ = standard deviation of the embedding matrix's entries, as in
:mod:`heta_lens.evals.metrics.causal`); then, for every layer l and position p, the clean
residual stream ``blocks.l.hook_resid_pre`` at p is restored into the corrupted run
and log P(target) is read. The normalised restoration effect (log P_restored −
log P_corrupted) / (log P_clean − log P_corrupted) is 1 where restoring one state brings the
whole prediction back.

The values are those of ``transformer_lens.patching.get_act_patch_resid_pre`` run on the
noised model (tested, to its float32 storage), but computed with one batched forward per layer
(every position restored in its own copy) instead of TL's one forward per (layer, position):
on SmolLM2 with a 45-token context TL's loop took 12 minutes on the 2-core machine, the
batched form takes seconds.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn

from heta_lens._typing import TokensLike, typechecked
from heta_lens.hooks import ModelAdapter, names, preserved_model_state
from heta_lens.inputs import prepare


@dataclass(frozen=True, kw_only=True)
class CausalTrace:
    """Restoration effects of one target (see the module docstring).

    Attributes:
        log_p: log P(target) after restoring clean ``resid_pre`` at (layer, position),
            ``[n_layers, ctx]``.
        log_p_clean: log P(target), clean run.
        log_p_corrupted: log P(target), corrupted run (nothing restored).
        corrupt: The noised positions.
        str_tokens: Context token strings (``None`` without a tokenizer).
        target_token: The target token's string (or id).
    """

    log_p: Float[Tensor, "n_layers ctx"]
    log_p_clean: float
    log_p_corrupted: float
    corrupt: tuple[int, ...]
    str_tokens: list[str] | None
    target_token: str

    @property
    def restoration(self) -> Float[Tensor, "n_layers ctx"]:
        """(log P_restored − log P_corrupted) / (log P_clean − log P_corrupted)."""
        gap = self.log_p_clean - self.log_p_corrupted
        return (self.log_p - self.log_p_corrupted) / (gap if abs(gap) > 1e-12 else 1e-12)


@typechecked
def causal_trace(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: int,
    corrupt: Sequence[int] | None = None,
    noise_scale: float = 3.0,
    generator: torch.Generator | None = None,
) -> CausalTrace:
    """Layer × position restoration effects of one target.

    Args:
        model: A ``HookedTransformer`` or ``TransformerBridge``.
        tokens: Token ids (or a string) containing the target.
        target: Index of the explained token.
        corrupt: Positions to noise (default: every context position but the first, which
            is the BOS/attention sink on the models we ship).
        noise_scale: c in ε ~ N(0, (c·σ)²).
        generator: Source of the noise (default: seeded 0).

    Returns:
        :class:`CausalTrace`. Costs ``n_layers × ctx`` forwards.

    Raises:
        ValueError: Bad tokens/target, a position outside the context, or nothing to corrupt.
    """
    adapter = ModelAdapter(model)
    tl_model: Any = adapter.model  # TL's dynamic module surface
    req = prepare(adapter, tokens, target)
    ctx = req.target
    positions = tuple(range(1, ctx)) if corrupt is None else tuple(int(p) for p in corrupt)
    if not positions:
        raise ValueError("nothing to corrupt: the context has a single token")
    bad = [p for p in positions if not 0 <= p < ctx]
    if bad:
        raise ValueError(f"corrupt positions {bad} are outside the context [0, {ctx})")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    prefix = req.prefix[None].to(adapter.device)
    target_id = req.target_id

    with preserved_model_state(model), torch.no_grad():
        sigma = noise_scale * adapter.embedding_std()
        noise = torch.zeros(ctx, adapter.d_model, dtype=torch.float64)
        eps = torch.randn((len(positions), adapter.d_model), generator=gen, dtype=torch.float64)
        noise[list(positions)] = sigma * eps
        noise = noise.to(device=adapter.device, dtype=adapter.dtype)

        def add_noise(act: Tensor, hook: object) -> Tensor:  # noqa: ARG001
            return act + noise[None, : act.shape[1]]

        states: dict[int, Tensor] = {}

        def keeper(layer: int) -> Callable[[Tensor, object], Tensor]:
            def keep(act: Tensor, hook: object) -> Tensor:  # noqa: ARG001
                states[layer] = act[0].detach()
                return act

            return keep

        keep_all = [(names.resid_pre(layer), keeper(layer)) for layer in range(adapter.n_layers)]
        with tl_model.hooks(fwd_hooks=keep_all):
            clean = adapter.last_log_probs(prefix)[0, target_id]
        rows = torch.arange(ctx, device=adapter.device)
        per_layer = []
        for layer in range(adapter.n_layers):
            state = states[layer]

            def restore(act: Tensor, hook: object, state: Tensor = state) -> Tensor:  # noqa: ARG001
                act = act.clone()
                act[rows, rows] = state.to(act.dtype)  # copy p gets clean position p back
                return act

            hooks = [(names.EMBED, add_noise), (names.resid_pre(layer), restore)]
            with tl_model.hooks(fwd_hooks=hooks):
                per_layer.append(adapter.last_log_probs(prefix.expand(ctx, -1))[:, target_id])
        with tl_model.hooks(fwd_hooks=[(names.EMBED, add_noise)]):
            corrupted = adapter.last_log_probs(prefix)[0, target_id]
        log_p = torch.stack(per_layer)
        log_p_clean, log_p_corrupted = float(clean), float(corrupted)
    return CausalTrace(
        log_p=log_p.detach().cpu().double(),
        log_p_clean=log_p_clean,
        log_p_corrupted=log_p_corrupted,
        corrupt=positions,
        str_tokens=adapter.to_str_tokens(req.prefix),
        target_token=(adapter.to_str_tokens(req.tokens[req.target : req.target + 1]) or [""])[0]
        if adapter.tokenizer is not None
        else str(target_id),
    )
