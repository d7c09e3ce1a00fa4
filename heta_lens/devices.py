"""Devices and dtypes a model is loaded on: names parsed once, with clear errors.

:func:`resolve_device` and :func:`resolve_dtype` turn what a user writes (``"auto"``,
``"cuda:1"``, ``"bfloat16"``) into torch objects for :func:`heta_lens.load_model`, the CLI's
``--device``/``--dtype`` and the eval settings. :func:`cast_floating` puts a module's weights in
a dtype the way Hugging Face loads a half-precision model (buffers such as rotary frequencies
stay in float32).

How heta_lens computes on a half-precision model (float32, weights upcast for the duration of
each call) is :mod:`heta_lens.hooks.precision`.
"""

from dataclasses import dataclass

import psutil
import torch
from torch import nn

from heta_lens.flags import flag

DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda")
"""What ``--device`` accepts on the command line (the API also takes ``"cuda:N"`` and a
``torch.device``)."""

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float64": torch.float64,
}
"""What ``--dtype`` accepts, by name."""

HALF_DTYPES: tuple[torch.dtype, ...] = (torch.bfloat16, torch.float16)
"""Half-precision dtypes: heta_lens computes on such a model in float32."""


def resolve_device(device: str | torch.device = "cpu") -> torch.device:
    """The ``torch.device`` that ``device`` names.

    Args:
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``,
            ``"cuda:N"`` or a ``torch.device`` of type ``cpu`` or ``cuda``.

    Returns:
        The device (``"cuda"`` without an index is left without one: the current device).

    Raises:
        ValueError: An unknown name, a device type other than CPU or CUDA, CUDA requested on a
            machine where it is not available, or a CUDA index past the last device.
        TypeError: ``device`` is neither a string nor a ``torch.device``.

    Examples:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if isinstance(device, str):
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            parsed = torch.device(device)
        except RuntimeError:
            raise ValueError(f"unknown device {device!r}; valid: auto, cpu, cuda, cuda:N") from None
    elif isinstance(device, torch.device):
        parsed = device
    else:
        raise TypeError(f"device must be a string or a torch.device; got {type(device).__name__}")
    if parsed.type == "cpu":
        return parsed
    if parsed.type != "cuda":
        raise ValueError(f"unsupported device {str(parsed)!r}; heta_lens runs on cpu or cuda")
    if not torch.cuda.is_available():
        raise ValueError(
            f"device {str(parsed)!r} requested but CUDA is not available on this machine "
            f"(torch {torch.__version__}); use device='cpu' or 'auto'"
        )
    if parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise ValueError(
            f"device {str(parsed)!r} requested but only {torch.cuda.device_count()} CUDA "
            "device(s) exist"
        )
    return parsed


def resolve_dtype(dtype: str | torch.dtype = torch.float32) -> torch.dtype:
    """The floating ``torch.dtype`` that ``dtype`` names.

    Args:
        dtype: A floating ``torch.dtype`` or one of ``"float32"``, ``"bfloat16"``,
            ``"float16"``, ``"float64"``.

    Raises:
        ValueError: An unknown name, or a dtype that is not a real floating type (integers,
            booleans, complex and 8-bit floats cannot hold a model's weights here).
        TypeError: ``dtype`` is neither a string nor a ``torch.dtype``.

    Examples:
        >>> resolve_dtype("bfloat16")
        torch.bfloat16
    """
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
        return DTYPES[dtype]
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a string or a torch.dtype; got {type(dtype).__name__}")
    if dtype not in DTYPES.values():
        raise ValueError(f"dtype must be a floating type ({', '.join(DTYPES)}); got {dtype}")
    return dtype


def cast_floating(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """``module`` with its floating weights in ``dtype`` (in place; returned for chaining).

    float32/float64: every floating parameter and buffer (``module.to(dtype)``). A
    half-precision dtype: parameters only, as ``from_pretrained(dtype=torch.bfloat16)``
    leaves a model: its floating buffers (rotary inverse frequencies) stay as they are, so
    positions are not rounded to 8 bits of mantissa.
    """
    if dtype not in HALF_DTYPES:
        return module.to(dtype=dtype)
    with torch.no_grad():
        for param in module.parameters():
            if param.is_floating_point():
                param.data = param.data.to(dtype)
    return module


AUTO_MEMORY_FRACTION = 0.75
"""Share of the memory free on the model's device that an automatic budget
(``Hvp(memory_gb=None)``) may use: the HVP cost model is an estimate (within ~15 % of the
measured peaks, :func:`heta_lens.curvature.hvp.hvp_bytes`), and the rest of the call needs some."""


def free_memory_gb(device: torch.device) -> float:
    """GB of memory free for new tensors on ``device`` now: ``torch.cuda.mem_get_info`` on
    CUDA, the operating system's available memory (``psutil.virtual_memory().available``:
    free plus reclaimable page cache) on CPU.

    Other processes sharing the device (a second eval worker) are not predicted: what they
    allocate after this call is not seen.
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free / 2**30
    return psutil.virtual_memory().available / 2**30


def auto_budget_gb(device: torch.device, *, fraction: float = AUTO_MEMORY_FRACTION) -> float:
    """The automatic activation budget on ``device``: ``fraction`` of :func:`free_memory_gb`."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1]; got {fraction}")
    return fraction * free_memory_gb(device)


def device_flag() -> str:
    """The ``--device`` field of a settings dataclass (:mod:`heta_lens.flags`)."""
    return flag(
        "cpu",
        choices=DEVICE_CHOICES,
        help="where the model runs: cpu (default), cuda, or auto (cuda when available)",
    )


def dtype_flag() -> str:
    """The ``--dtype`` field of a settings dataclass (:mod:`heta_lens.flags`)."""
    return flag(
        "float32",
        choices=tuple(DTYPES),
        help="weight dtype (default float32; bfloat16/float16 models are computed on in "
        "float32, their weights upcast for each call)",
    )


@dataclass(frozen=True, kw_only=True)
class DeviceOptions:
    """``--device`` and ``--dtype`` of the commands that load a model (``attribute``,
    ``bench``, ``demo``; ``eval`` has the same fields in its settings), passed to
    :func:`heta_lens.load_model`."""

    device: str = device_flag()
    dtype: str = dtype_flag()
