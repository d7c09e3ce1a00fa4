"""A half-precision model is computed on in float32: its weights upcast for one call.

The rule. HETA differentiates twice (curvature: Hessian–vector products), compares nearly
equal distributions (information: KL between the original and each masked rerun) and sums
attention–value flows (the gate). In bfloat16 (8 bits of mantissa) or float16 each of these is
dominated by round-off: on the tiny test models (``tests/unit/test_half_precision.py``) a
bfloat16 computation misses the float64 value of the same weights by up to 1% (gate,
curvature) and by 30% to over 100 times (information, where the KL is small). So for a model
whose weights are bfloat16 or float16, every heta_lens call runs the *float32 model with the
same weights*: on entry to :func:`heta_lens.hooks.preserved_model_state` (the guard around
every engine call, baselines and metrics included), :func:`float32_weights` replaces each
half-precision parameter's and buffer's data by a float32 copy and sets TransformerLens's
``cfg.dtype`` (which TL uses to create activations and caches) to float32; on exit, normal or
by exception,
the original tensors themselves are put back (kept, not cast back: restoring cannot round, and
tied or shared weights share their storage again). Every bfloat16/float16 value is exactly
representable in float32, so the computation is exactly the float32 evaluation of the given
weights, and the model afterwards is the same objects, bit for bit, in their own dtype.
Results (scores and components) are then float32. The explained prediction is the float32
model's too (greedy next tokens, ``target_log_prob``): it can differ from the model run in
its own half precision where two tokens are nearly tied.

Cost: a float32 copy of every half-precision weight for the duration of the call (twice the
half-precision parameter memory, e.g. +540 MB for SmolLM2-135M in bfloat16, on the model's
device, next to the original) and one cast of the weights per call; activations are float32,
as for a float32 model. Nothing is gained in speed or memory by loading a model in half
precision for heta_lens; the rule only makes such models give correct numbers.

Why not ``torch.func.functional_call`` with float32 parameter copies (the model untouched):
every forward in heta_lens would have to go through it, including the ones TransformerLens
and Hugging Face run internally (KV-cache reruns, ``run_with_cache``), and TL's ``cfg.dtype``
would still be half precision. Swapping the tensors inside the guard that already restores
``requires_grad``/``training`` is one place, and the guard's exception path covers it.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from heta_lens.devices import HALF_DTYPES


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype heta_lens computes in for weights of ``dtype``: float32 for bfloat16 and
    float16, else ``dtype`` itself.

    Examples:
        >>> compute_dtype(torch.bfloat16), compute_dtype(torch.float64)
        (torch.float32, torch.float64)
    """
    return torch.float32 if dtype in HALF_DTYPES else dtype


def _half(tensor: Tensor | None) -> bool:
    return tensor is not None and tensor.dtype in HALF_DTYPES


def _configs(model: nn.Module) -> list[Any]:
    """The TransformerLens configs (``cfg``) of the model and its modules whose dtype is half
    precision, each once."""
    found: dict[int, Any] = {}
    for module in model.modules():
        cfg = getattr(module, "cfg", None)
        if getattr(cfg, "dtype", None) in HALF_DTYPES:
            found[id(cfg)] = cfg
    return list(found.values())


@contextmanager
def float32_weights(model: nn.Module) -> Iterator[None]:
    """Run a block on the float32 version of a half-precision model (module docstring).

    Half-precision parameters get float32 data (``param.data``: the ``Parameter`` objects stay
    the same), half-precision buffers are replaced in their modules by float32 copies (a
    buffer registered in several modules gets one copy), and every TransformerLens ``cfg``
    with a half dtype says float32. On exit, also when the block raises, the original data,
    buffers and ``cfg.dtype`` are put back. A model without half-precision weights is not
    touched.
    """
    params = [p for p in model.parameters() if _half(p)]
    buffers = [
        (module, name, buf)
        for module in model.modules()
        for name, buf in module._buffers.items()
        if buf is not None and _half(buf)
    ]
    configs = _configs(model)
    if not params and not buffers and not configs:
        yield
        return
    data = [p.data for p in params]
    dtypes = [cfg.dtype for cfg in configs]
    copies: dict[int, Tensor] = {}
    try:
        with torch.no_grad():
            for p in params:
                p.data = p.data.float()
            for module, name, buf in buffers:
                if id(buf) not in copies:
                    copies[id(buf)] = buf.float()
                module._buffers[name] = copies[id(buf)]
        for cfg in configs:
            cfg.dtype = torch.float32
        yield
    finally:
        for p, original in zip(params, data, strict=True):
            p.data = original
        for module, name, buf in buffers:
            module._buffers[name] = buf
        for cfg, dtype in zip(configs, dtypes, strict=True):
            cfg.dtype = dtype
