"""Forwards that read more than the last position's log-probabilities.

The token path reads ``log P(· | prefix)`` at the last position
(:meth:`~heta_lens.hooks.adapter.ModelAdapter.last_log_probs`). Other targets read the
log-probabilities of the last ``keep`` positions (a teacher-forced continuation) or one hook
point's activation. Both replace an activation the same way ``last_log_probs`` does (the
output of ``hook_embed``, or the residual stream entering block ``at_layer``) and keep the
graph, so gradients flow into the replacement.
"""

from collections.abc import Callable

import torch
from jaxtyping import Float, Int
from torch import Tensor

from heta_lens.hooks import names
from heta_lens.hooks.adapter import ModelAdapter, hooked_unembed

Hook = tuple[str, Callable[..., Tensor]]


def replacement_hooks(acts: Tensor | None, at_layer: int | None) -> list[Hook]:
    """The hook that swaps in ``acts`` at ``hook_embed`` (``at_layer=None``) or at
    ``blocks.{at_layer}.hook_resid_pre``; none when ``acts`` is ``None``."""
    if acts is None:
        return []

    def replace(act: Tensor, hook: object) -> Tensor:  # noqa: ARG001
        return acts.to(act.dtype)

    return [(names.EMBED if at_layer is None else names.resid_pre(at_layer), replace)]


def tail_log_probs(
    adapter: ModelAdapter,
    tokens: Int[Tensor, "batch pos"],
    acts: Float[Tensor, "batch pos d_model"] | None = None,
    *,
    keep: int,
    at_layer: int | None = None,
) -> Float[Tensor, "batch keep d_vocab"]:
    """Log-probabilities at the last ``keep`` positions (only those are unembedded).

    Raises:
        ValueError: ``keep`` outside ``[1, pos]``.
    """
    if not 1 <= keep <= tokens.shape[1]:
        raise ValueError(f"keep must lie in [1, {tokens.shape[1]}]; got {keep}")
    tokens = tokens.to(adapter.device)
    model = adapter.model
    with model.hooks(fwd_hooks=replacement_hooks(acts, at_layer)):
        if adapter.kind == "bridge":
            logits = model(tokens, logits_to_keep=keep)[:, -keep:]
        else:
            resid = model(tokens, stop_at_layer=adapter.n_layers)[:, -keep:]
            logits = hooked_unembed(model, resid)
    return logits.log_softmax(dim=-1)


def activation(
    adapter: ModelAdapter,
    tokens: Int[Tensor, "batch pos"],
    hook_name: str,
    acts: Float[Tensor, "batch pos d_model"] | None = None,
    *,
    at_layer: int | None = None,
) -> Tensor:
    """The live activation of hook point ``hook_name`` (graph kept), ``[batch, ...]``.

    Raises:
        ValueError: The hook point does not exist or did not fire.
    """
    if hook_name not in adapter.model.hook_dict:
        raise ValueError(f"hook point {hook_name!r} does not exist on this model")
    store: dict[str, Tensor] = {}

    def keep(act: Tensor, hook: object) -> Tensor:  # noqa: ARG001
        store["act"] = act
        return act

    hooks = [*replacement_hooks(acts, at_layer), (hook_name, keep)]
    model = adapter.model
    with model.hooks(fwd_hooks=hooks):
        ids = tokens.to(adapter.device)
        if adapter.kind == "bridge":
            model(ids, logits_to_keep=1)
        else:
            model(ids, return_type=None)
    if "act" not in store:
        raise ValueError(f"hook point {hook_name!r} did not fire in a forward pass")
    return store["act"]


def encode(adapter: ModelAdapter, text: str) -> Int[Tensor, " pos"]:
    """``text`` as token ids without a BOS token (the model's tokenizer, no truncation).

    Raises:
        ValueError: The model has no tokenizer.
    """
    if adapter.tokenizer is None:
        raise ValueError("this model has no tokenizer: pass token ids instead of a string")
    with torch.no_grad():
        return adapter.model.to_tokens(text, prepend_bos=False, truncate=False)[0]
