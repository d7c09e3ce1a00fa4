"""lxt's AttnLRP rules placed on a Hugging Face Llama twin's modules, as removable hooks.

The method (what the rules are, where lxt puts them, and why lxt's own ``monkey_patch`` is not
used on our pins) is described in :mod:`heta_lens.methods.attnlrp`; this module holds what
touches model internals: loading lxt's ``efficient/rules.py`` without its package
``__init__`` (:func:`lxt_rules`) and the forward / pre-forward hooks on the twin's
``LlamaRMSNorm``, ``LlamaMLP`` and ``LlamaAttention`` modules (:func:`apply_rules`).
"""

import importlib.metadata
import importlib.util
from functools import cache, partial
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

LXT_VERSION = "2.1"
INSTALL = f"pip install --no-deps lxt=={LXT_VERSION} (or pip install 'heta-lens[lrp]')"


@cache
def lxt_rules() -> ModuleType:
    """lxt's ``efficient/rules.py``, loaded from the installed lxt without running
    ``lxt/efficient/__init__.py`` (which fails on transformers 5: :mod:`heta_lens.methods.attnlrp`).

    Raises:
        ImportError: lxt is not installed (the message says how to install it), or its
            installed files lack ``efficient/rules.py`` or one of the three rule functions.
    """
    spec = importlib.util.find_spec("lxt")
    if spec is None or spec.origin is None:
        raise ImportError(f"attnlrp needs the lrp extra: {INSTALL}")
    path = Path(spec.origin).parent / "efficient" / "rules.py"
    version = importlib.metadata.version("lxt")
    loader = importlib.util.spec_from_file_location("heta_lens._lxt_efficient_rules", path)
    if not path.is_file() or loader is None or loader.loader is None:
        raise ImportError(f"lxt {version} has no efficient/rules.py; attnlrp needs {INSTALL}")
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    missing = [
        name
        for name in ("stop_gradient", "divide_gradient", "identity_rule_implicit")
        if not hasattr(module, name)
    ]
    if missing:
        raise ImportError(f"lxt {version}'s rules.py lacks {missing}; attnlrp needs {INSTALL}")
    return module


def _rms_norm(rules: ModuleType, module: nn.Module, args: tuple[Any, ...], out: Tensor) -> Tensor:
    """lxt ``rms_norm_forward``: the norm recomputed with its scale as a constant.

    lxt and HF compute the norm in float32 whatever the input dtype; here a float64 input keeps
    float64 (float32 or wider), so a float64 model's relevances carry no float32 round-off
    (they differ from lxt's by it: 5e-9 on the tiny test Llama; none in float32)."""
    x = args[0]
    wide = x.to(torch.promote_types(x.dtype, torch.float32))
    scale = torch.rsqrt(wide.pow(2).mean(-1, keepdim=True) + module.variance_epsilon)
    return (module.weight * (wide * rules.stop_gradient(scale)).to(x.dtype)).to(out.dtype)


def _identity(rules: ModuleType, module: nn.Module, args: tuple[Any, ...], _out: Tensor) -> Tensor:
    """lxt ``identity_rule_implicit`` on the activation: backward multiplies by act(x)/x."""
    return rules.identity_rule_implicit(module.forward, args[0])


def _divide(rules: ModuleType, factor: int, _module: nn.Module, _args: Any, out: Tensor) -> Tensor:
    """lxt ``divide_gradient``: identity forward, gradient divided by ``factor``."""
    return rules.divide_gradient(out, factor)


def _halve_product(rules: ModuleType, _module: nn.Module, args: tuple[Any, ...]) -> tuple[Any]:
    """Uniform rule on ``act(gate) ⊙ up``, ``down_proj``'s input (lxt ``gated_mlp_forward``)."""
    return (rules.divide_gradient(args[0], 2),)


def apply_rules(twin: nn.Module) -> list[RemovableHandle]:
    """Put lxt's AttnLRP rules for Llama on ``twin``'s modules (module docstring), as hooks.

    Raises:
        ValueError: The twin's modules are not laid out as transformers' Llama (counts of
            norms, MLPs and attention modules do not match its layers).
    """
    from transformers.models.llama.modeling_llama import LlamaAttention, LlamaMLP, LlamaRMSNorm

    rules = lxt_rules()
    handles: list[RemovableHandle] = []
    norms = mlps = attentions = 0
    for module in twin.modules():
        if isinstance(module, LlamaRMSNorm):
            handles.append(module.register_forward_hook(partial(_rms_norm, rules)))
            norms += 1
        elif isinstance(module, LlamaMLP):
            handles.append(module.act_fn.register_forward_hook(partial(_identity, rules)))
            halve = partial(_halve_product, rules)
            handles.append(module.down_proj.register_forward_pre_hook(halve))
            mlps += 1
        elif isinstance(module, LlamaAttention):
            for proj, factor in ((module.q_proj, 4), (module.k_proj, 4), (module.v_proj, 2)):
                handles.append(proj.register_forward_hook(partial(_divide, rules, factor)))
            attentions += 1
    config: Any = twin.config
    layers = int(config.num_hidden_layers)
    if (norms, mlps, attentions) != (2 * layers + 1, layers, layers):
        for handle in handles:
            handle.remove()
        raise ValueError(
            f"unexpected Llama layout for {layers} layers: {norms} RMSNorms, {mlps} MLPs, "
            f"{attentions} attention modules"
        )
    return handles
