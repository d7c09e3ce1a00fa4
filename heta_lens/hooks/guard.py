"""Leave the model exactly as it was: a context manager around every engine call."""

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from heta_lens.hooks.precision import float32_weights


def hook_point_hook_count(model: nn.Module) -> int:
    """Number of PyTorch hooks registered on the model's TransformerLens ``HookPoint``s.

    Only hook points are counted: a ``TransformerBridge`` installs persistent hooks of its own
    on wrapped HF modules during its first forward, which are the model's business, not ours.
    """
    from transformer_lens.hook_points import HookPoint

    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
        if isinstance(m, HookPoint)
    )


@contextmanager
def preserved_model_state(model: nn.Module, *, freeze_parameters: bool = True) -> Iterator[None]:
    """Run a block with the model in eval mode, (optionally) frozen and, if its weights are
    half precision, in float32; then restore it.

    A bfloat16/float16 model runs inside the block as the float32 model with the same weights
    (:func:`heta_lens.hooks.precision.float32_weights`: the rule, its reasons and its cost).
    On exit, normal or by exception, its original tensors are put back bit for bit, every
    parameter's ``requires_grad`` flag and every module's ``training`` flag are restored and
    the global grad mode is reset to what it was. Hooks are
    only ever added through ``model.hooks(...)`` (which removes them in ``finally``); this guard
    additionally checks that the number of registered PyTorch hooks is unchanged and raises a
    ``RuntimeError`` if a hook leaked onto a hook point, so a leak can never pass silently.
    The global RNG is not touched by the engine (randomness goes through explicit generators).

    Args:
        model: Any ``torch.nn.Module`` (HookedTransformer or TransformerBridge).
        freeze_parameters: Set ``requires_grad=False`` on all parameters inside the block, so
            second-order autograd builds no parameter graph.
    """
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    modes = [(m, m.training) for m in model.modules()]
    grad_mode = torch.is_grad_enabled()
    hooks_before = hook_point_hook_count(model)
    try:
        model.eval()
        if freeze_parameters:
            for p in params:
                p.requires_grad_(False)
        with float32_weights(model):
            yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)
        for m, mode in modes:
            m.training = mode
        torch.set_grad_enabled(grad_mode)
    leaked = hook_point_hook_count(model) - hooks_before
    if leaked != 0:
        raise RuntimeError(f"heta_lens left {leaked} hook(s) registered on the model")
