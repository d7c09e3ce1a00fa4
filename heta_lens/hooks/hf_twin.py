"""A plain Hugging Face model that shares a ``TransformerBridge``'s weight tensors.

A ``TransformerBridge`` wraps the HF model it was booted from in place: every HF submodule it
maps (embedding, blocks, norms, attention, projections) is replaced in the HF tree by a bridge
component that holds the original module as its ``_original_component`` child, and the
bridge's attention components recompute attention themselves (to expose ``hook_pattern``)
instead of calling the HF attention module. Code that must run the HF modules' own forwards
(AttnLRP's rules are written for them, :mod:`heta_lens.methods.attnlrp`) cannot run the
bridged tree. :func:`hf_twin` builds a fresh HF model of the same class and config on the
``meta`` device and points each of its parameters and buffers at the bridge's own tensor (the
original HF module's, found by unwrapping every ``_original_component`` along the path): no
copy, no random initialisation, no change to the bridge. The twin is the caller's to modify
(patch forwards, add hooks) and to drop.
"""

import copy
from typing import Any

import torch
from torch import nn

from heta_lens.hooks.adapter import ModelAdapter

_WRAPPED = "_original_component"


def _unwrap(module: nn.Module) -> nn.Module:
    """The HF module under any number of bridge wrappers (itself when not wrapped)."""
    while _WRAPPED in module._modules:
        inner = module._modules[_WRAPPED]
        if inner is None:
            break
        module = inner
    return module


def _owner(root: nn.Module, dotted: str) -> tuple[nn.Module, str]:
    """The HF module holding the tensor named ``dotted`` (a twin's state name) in the bridged
    tree rooted at ``root``, and the tensor's attribute name."""
    *path, leaf = dotted.split(".")
    module = _unwrap(root)
    for part in path:
        child = module._modules.get(part)
        if child is None:
            raise ValueError(f"the bridged model has no submodule {part!r} on the path {dotted!r}")
        module = _unwrap(child)
    return module, leaf


def _point_at(twin: nn.Module, source: nn.Module) -> None:
    """Make every parameter and buffer of ``twin`` the tensor of the same name in ``source``."""
    for name, _ in [*twin.named_parameters(remove_duplicate=False)]:
        owner, leaf = _owner(source, name)
        tensor = owner._parameters.get(leaf)
        if tensor is None:
            raise ValueError(f"the bridged model has no parameter {name!r}")
        module, attr = _owner(twin, name)
        module._parameters[attr] = tensor
    for name, _ in [*twin.named_buffers(remove_duplicate=False)]:
        owner, leaf = _owner(source, name)
        tensor = owner._buffers.get(leaf)
        if tensor is None:
            raise ValueError(f"the bridged model has no buffer {name!r}")
        module, attr = _owner(twin, name)
        module._buffers[attr] = tensor


def hf_architecture(adapter: ModelAdapter) -> str:
    """The HF class name under a ``TransformerBridge``, or the adapter's architecture name
    (a ``HookedTransformer`` has no HF model under it)."""
    if adapter.kind != "bridge":
        return adapter.architecture
    return type(adapter.model.original_model).__name__


def hf_twin(adapter: ModelAdapter) -> Any:
    """A HF causal LM of the bridge's class and config, sharing the bridge's tensors.

    Eager attention, eval mode. Its parameters and buffers *are* the bridge's (same objects),
    so it computes what the HF model the bridge was booted from computes; run it inside
    :func:`~heta_lens.hooks.preserved_model_state` of the bridge (which freezes them).

    Raises:
        ValueError: ``adapter`` is not over a ``TransformerBridge``, or a tensor of the HF
            model cannot be found in the bridged tree.
    """
    if adapter.kind != "bridge":
        raise ValueError(
            f"a Hugging Face twin needs a TransformerBridge; got a {type(adapter.model).__name__}"
        )
    original: Any = adapter.model.original_model
    config = copy.deepcopy(original.config)
    config._attn_implementation = "eager"
    with torch.device("meta"):
        twin: nn.Module = type(original)(config)
    _point_at(twin, original)
    return twin.eval()
