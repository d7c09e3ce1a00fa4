"""Shared fixtures: tiny random models of both TransformerLens types, in float64."""

import importlib.util
import os
from pathlib import Path
from typing import Literal

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from heta_lens.testing import (  # noqa: E402
    tiny_bridge,
    tiny_hooked,
    tiny_llama_hf,
    tiny_tokenizer,
)


def _has_hooked() -> bool:
    try:
        from transformer_lens import HookedTransformer  # noqa: F401
    except ImportError:
        return False
    return True


HAS_HOOKED = _has_hooked()
HAS_CAPTUM = importlib.util.find_spec("captum") is not None

HOOKED_VARIANTS: tuple[Literal["ln", "attn_only", "gqa"], ...] = ("ln", "attn_only", "gqa")
MODEL_IDS = [*(f"hooked-{v}" for v in HOOKED_VARIANTS), "bridge"]


def isolated_env(home: Path) -> dict[str, str]:
    """This process's environment with a new empty HOME (so every cache under it starts empty)
    and no ``HETA_LENS_DATA`` / ``HETA_LENS_CACHE`` override; offline."""
    drop = ("HETA_LENS_DATA", "HETA_LENS_CACHE", "HF_HOME", "XDG_CACHE_HOME")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    home.mkdir(parents=True, exist_ok=True)
    env |= {"HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return env


def make_model(model_id: str, dtype: torch.dtype = torch.float64):
    if model_id == "bridge":
        return tiny_bridge(dtype=dtype)
    variants = {f"hooked-{v}": v for v in HOOKED_VARIANTS}
    return tiny_hooked(variants[model_id], dtype=dtype)


def model_params(ids=MODEL_IDS):
    """Parametrise over model ids; HookedTransformer ones carry the `hooked` marker."""
    return [
        pytest.param(
            i, marks=[pytest.mark.hooked] if i.startswith("hooked") else [pytest.mark.bridge], id=i
        )
        for i in ids
    ]


@pytest.fixture(params=model_params())
def model(request):
    return make_model(request.param)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A tiny random float32 Llama and its tokenizer saved as a local HF directory: what the
    CLI tests pass as ``--model`` (``load_model`` reads a local HF directory)."""
    path = tmp_path_factory.mktemp("tiny-llama")
    tiny_llama_hf(dtype=torch.float32).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


@pytest.fixture
def tokens() -> torch.Tensor:
    return torch.tensor([1, 5, 7, 3, 9, 11, 4])


def oracle_tolerance(model) -> dict[str, float]:
    """Tolerance for comparisons against explicit-Hessian / rerun oracles.

    HookedTransformer models are float64 end to end: 1e-9. A float64 TransformerBridge over a
    HF Llama is not: HF's eager attention computes softmax in float32 and LlamaRMSNorm
    normalises in float32, so its forward carries float32 round-off (central differences of
    log P jitter by ~1e-2 relative at eps=1e-6), and two exact evaluation orders of the same
    Hessian differ by ~1e-7 relative. 1e-5 sits two decades above that measured floor.
    """
    from heta_lens.hooks import model_kind

    if model_kind(model) == "bridge":
        return {"rtol": 1e-5, "atol": 1e-8}
    return {"rtol": 1e-9, "atol": 1e-10}


@pytest.fixture(scope="session")
def cluster():
    """A two-node Ray cluster on this machine (tests marked ``ray``; tests/unit/ray_cluster.py)."""
    from tests.unit.ray_cluster import two_node_cluster

    with two_node_cluster() as nodes:
        yield nodes
