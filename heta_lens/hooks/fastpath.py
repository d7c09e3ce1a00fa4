"""Self-checks for fast paths that lean on another library's internals.

The prefix-KV reruns (:class:`heta_lens.hooks.prefix.PrefixCache`) depend on how
transformers and transformer-lens thread a key/value cache through attention, which has
changed between minor releases (transformers 5.24 left the bridge's cache empty, so every
masked rerun silently ignored its prefix). Before the path is trusted for a model, one masked
row is run through it and through a plain full-length forward; on a mismatch (or an error
inside the fast path) callers fall back to the plain path and one warning names the versions.
The verdict is cached per model object for the life of the process. An architecture that
rules the path out by construction (:func:`prefix_path_obstacle`) is refused up front, with a
warning naming the feature.
"""

import warnings
import weakref
from importlib import metadata
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from heta_lens.hooks.adapter import ModelAdapter, ModelKind
from heta_lens.hooks.prefix import PrefixCache

_VERDICTS: "weakref.WeakKeyDictionary[Any, bool]" = weakref.WeakKeyDictionary()


class FastPathWarning(UserWarning):
    """A fast path disagreed with its plain reference and was switched off for this model."""


def probability_tolerance(dtype: torch.dtype, kind: ModelKind = "bridge") -> float:
    """Largest max-|Δp| between the fast and the plain row that counts as round-off.

    1000 machine epsilons of the dtype the model computes its softmax in, capped at 0.05 for
    half-precision models. A ``TransformerBridge`` computes it in at least float32 (HF
    attention and norms run in float32 even in a float64 model); a ``HookedTransformer`` in
    its own dtype. Round-off between the two paths is ~1e-6 in float32 and ~1e-16 in float64;
    the failure this guards against moves probabilities by 1e-3 (a tiny random model) to 1e-1
    (SmolLM2), and by 6e-5 for a tiny float64 dynamic-NTK model, which a float32 tolerance
    would let through.
    """
    eps = torch.finfo(dtype).eps
    if kind == "bridge":
        eps = max(eps, torch.finfo(torch.float32).eps)
    return min(1e3 * eps, 0.05)


def prefix_path_obstacle(adapter: ModelAdapter, ctx: int) -> str | None:
    """Why prefix-KV reruns cannot reproduce plain forwards of ``ctx`` tokens on this model by
    construction (``None`` when nothing in its architecture rules them out).

    A HookedTransformer with ``attention_dir="bidirectional"`` lets masking token i change the
    positions before i, which the cache holds unmasked. One with ``use_dynamic_ntk_rope``
    (Qwen-1) widens its rotary base with the key length once that exceeds
    ``train_seq_length``, so the cached keys of a short prefix were computed with another
    base than the full sequence uses.
    """
    if adapter.kind != "hooked":
        return None
    cfg = adapter.model.cfg
    if getattr(cfg, "attention_dir", "causal") != "causal":
        return (
            f"attention_dir={cfg.attention_dir!r}: masking a token changes the positions before it"
        )
    if getattr(cfg, "use_dynamic_ntk_rope", False):
        train = int(getattr(cfg, "train_seq_length", None) or cfg.n_ctx)
        if ctx > train:
            return (
                f"use_dynamic_ntk_rope: the rotary base depends on the sequence length past "
                f"train_seq_length={train}, so a cached prefix was computed with another base"
            )
    return None


def library_versions() -> str:
    """``transformers X, transformer-lens Y, torch Z`` as installed."""
    names = ("transformers", "transformer-lens", "torch")
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def prefix_path_agrees(
    adapter: ModelAdapter,
    prefix: Int[Tensor, " ctx"],
    x: Float[Tensor, "ctx d_model"],
    replacements: Float[Tensor, "ctx d_model"],
) -> bool:
    """Whether prefix-KV reruns reproduce plain forwards on this model (checked once, cached).

    Runs the masked row of the middle position (so a non-empty cache is exercised) through
    :class:`PrefixCache` and through :meth:`ModelAdapter.last_log_probs`, and compares the two
    distributions by their largest probability difference (:func:`probability_tolerance`).
    On a mismatch, or any exception inside the fast path, warns once with
    :class:`FastPathWarning` naming the installed versions and returns ``False``. A context
    of one token cannot use a cache, so it is not checked (and nothing is cached).

    Before that, on every call (not cached: it depends on ``ctx``), an architecture that rules
    the path out (:func:`prefix_path_obstacle`) returns ``False`` with a
    :class:`FastPathWarning` naming the feature.

    Call under ``torch.no_grad()`` inside the model-state guard.
    """
    model = adapter.model
    ctx = int(prefix.numel())
    obstacle = prefix_path_obstacle(adapter, ctx)
    if obstacle is not None:
        warnings.warn(
            f"heta_lens: prefix-KV masked reruns cannot reproduce a plain forward on this "
            f"{type(model).__name__} ({obstacle}); using full-length batched reruns instead "
            "(same numbers, slower).",
            FastPathWarning,
            stacklevel=2,
        )
        return False
    if model in _VERDICTS:
        return _VERDICTS[model]
    if ctx < 2:
        return True
    start = ctx // 2
    masked = x.clone()
    masked[start] = replacements[start]
    plain = adapter.last_log_probs(prefix[None], masked[None])[0].exp()
    detail = ""
    try:
        cache = PrefixCache(adapter, prefix)
        cache.extend(start)
        fast = cache.suffix_log_probs(masked[None, start:])[0].exp()
        gap = float((fast - plain).abs().max())
        tolerance = probability_tolerance(adapter.dtype, adapter.kind)
        agrees = gap <= tolerance
        if not agrees:
            detail = f"max |Δp| = {gap:.3g} > {tolerance:.3g}"
    except Exception as err:  # any failure inside the fast path means: do not use it
        agrees, detail = False, f"{type(err).__name__}: {err}"
    if not agrees:
        warnings.warn(
            f"heta_lens: prefix-KV masked reruns disagree with a plain forward on this "
            f"{type(model).__name__} ({detail}) under {library_versions()}; using full-length "
            "batched reruns instead (same numbers, slower). The tested versions are in "
            "heta-lens's constraints/*.lock: installing from one restores the fast path.",
            FastPathWarning,
            stacklevel=2,
        )
    _VERDICTS[model] = agrees
    return agrees


def forget_verdict(model: Any) -> None:
    """Drop the cached verdict for ``model`` (the next prefix run is checked again)."""
    _VERDICTS.pop(model, None)
