"""Caching loader results as JSONL under ``cache_dir()/evals``, keyed by model and options."""

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from heta_lens._typing import typechecked
from heta_lens.evals.datasets.base import EvalInstance, FilterStats
from heta_lens.evals.datasets.jsonl import read_jsonl, write_jsonl
from heta_lens.hooks import ModelAdapter
from heta_lens.models import cache_dir

CACHE_VERSION = 1
"""Bumped when a loader's output for the same inputs changes (invalidates old caches)."""

Computed = tuple[list[EvalInstance], FilterStats]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _weights_digest(model: nn.Module, *, n_values: int = 16) -> str:
    digest = hashlib.sha256()
    for name, param in model.named_parameters():
        flat = param.detach().reshape(-1)
        step = max(1, flat.numel() // n_values)
        sample = flat[::step][:n_values].to(device="cpu", dtype=torch.float64)
        digest.update(name.encode())
        digest.update(str(tuple(param.shape)).encode())
        digest.update(sample.numpy().tobytes())
    return digest.hexdigest()


def _tokenizer_digest(tokenizer: Any) -> dict[str, Any]:
    if tokenizer is None:
        return {"tokenizer": None}
    vocab = sorted(dict(tokenizer.get_vocab()).items())
    return {
        "tokenizer_class": type(tokenizer).__name__,
        "tokenizer_size": len(tokenizer),
        "tokenizer_vocab": _sha(json.dumps(vocab, ensure_ascii=False).encode()),
        "bos_token_id": getattr(tokenizer, "bos_token_id", None),
    }


@typechecked
def model_fingerprint(model: nn.Module) -> str:
    """A short hash identifying a model for caching: what changes its tokens or predictions.

    Hashes the model class, TransformerLens config name and sizes (``d_vocab``, ``n_layers``,
    ``d_model``, ``n_ctx``), parameter dtype, the tokenizer's class, size, BOS id and full
    vocabulary, and each parameter tensor's name, shape and 16 evenly strided values. Equal
    fingerprints mean "same tokenizer and (almost surely) same weights"; it is not a
    cryptographic identity of every weight.
    """
    adapter = ModelAdapter(model)
    cfg = adapter.model.cfg
    parts: dict[str, Any] = {
        "class": type(model).__name__,
        "config_name": str(getattr(cfg, "model_name", "")),
        "sizes": [adapter.d_vocab, adapter.n_layers, adapter.d_model, adapter.n_ctx],
        "dtype": str(adapter.dtype),
        "weights": _weights_digest(model),
        **_tokenizer_digest(adapter.tokenizer),
    }
    return _sha(json.dumps(parts, sort_keys=True).encode())[:16]


def file_digest(path: Path) -> str:
    """SHA-256 of a data file's bytes (cache keys follow the data, not its path)."""
    return _sha(path.read_bytes())


def cache_path(dataset: str, key: Mapping[str, Any]) -> Path:
    """``cache_dir()/evals/<dataset>-<hash of key>.jsonl``."""
    blob = json.dumps({"version": CACHE_VERSION, **key}, sort_keys=True, default=str)
    return cache_dir() / "evals" / f"{dataset}-{_sha(blob.encode())[:20]}.jsonl"


def _read(path: Path, key: Mapping[str, Any]) -> Computed | None:
    if not path.is_file():
        return None
    try:
        rows = read_jsonl(path, what="dataset cache")
        header = rows[0]["header"]
        if header["key"] != json.loads(json.dumps(dict(key), default=str)):
            return None
        stats = FilterStats.from_json(header["stats"])
        instances = [EvalInstance.from_json(r) for r in rows[1:]]
    except (ValueError, KeyError, IndexError, TypeError):
        return None  # a damaged or foreign cache file is recomputed and replaced
    if len(instances) != stats.n_kept:
        return None
    return instances, stats


def cached_load(
    dataset: str,
    key: Mapping[str, Any],
    compute: Callable[[int | None], Computed],
    *,
    limit: int | None,
) -> Computed:
    """Load a loader's result from the cache, or compute and cache it.

    ``key`` must identify everything the result depends on except ``limit`` (model
    fingerprint, data-file digests, loader options). A full result (``limit=None``) serves
    every limit (its first ``limit`` instances, which is what a loader that processes
    candidates in file order and stops after ``limit`` kept ones returns); otherwise the result
    for this exact limit is used or computed. The cache file is written atomically after
    ``compute`` returns, so an error leaves no cache behind.
    """
    full_key = {**key, "limit": None}
    full = _read(cache_path(dataset, full_key), full_key)
    if full is not None:
        instances, stats = full
        return (instances if limit is None else instances[:limit]), stats
    exact_key = {**key, "limit": limit}
    path = cache_path(dataset, exact_key)
    hit = _read(path, exact_key)
    if hit is not None:
        return hit
    instances, stats = compute(limit)
    header = {"header": {"key": json.loads(json.dumps(exact_key, default=str))}}
    header["header"]["stats"] = stats.to_json()
    write_jsonl(path, [header, *(i.to_json() for i in instances)])
    return instances, stats
