"""Reruns that reuse the key/value cache of one unmasked prefix.

Replacing the input embedding of token i changes nothing at positions < i (causal attention),
so a masked rerun for token i only has to process positions i..ctx-1, attending to the cached
keys and values of positions 0..i-1 from the unmasked sequence. :class:`PrefixCache` holds
those keys/values for a growing prefix and runs batches of suffixes on top of it without
modifying it. Both model types are supported through their own KV-cache entry points:

- ``HookedTransformer``: TransformerLens's ``TransformerLensKeyValueCache`` passed as
  ``past_kv_cache``, with an explicit all-ones ``attention_mask`` (TL would otherwise derive one
  from the tokenizer, treating pad-id tokens as padding). TL offsets learned positional
  embeddings and rotary angles by the cache length; a frozen, batch-expanded copy of the cache
  serves each suffix batch.
- ``TransformerBridge``: a Hugging Face ``DynamicCache`` built from the model's config and
  passed in through transformers' public cache argument (``cache=`` from transformers 5.24,
  ``past_key_values=`` before; :func:`cache_kwarg` reads which from the model's signature). HF
  derives positions from the cache length. Each suffix batch gets a deep copy repeated along
  the batch axis (``batch_repeat_interleave``), so the shared prefix cache is never extended by
  a masked row.

The bridge's attention wrappers (transformer-lens 3.9 and 4.3) read the cache only from a
``past_key_values`` keyword, which transformers >= 5.24 no longer passes to attention layers
(it passes ``cache=``): the cache then stays empty and every suffix runs without its prefix.
:func:`bridge_cache_alias` hands the same cache object to those wrappers under the old name
for the duration of one call. Because this path leans on both libraries' internals,
:meth:`PrefixCache.extend` checks that the cache really holds the prefix afterwards (else
:class:`PrefixCacheError`), and :func:`heta_lens.hooks.fastpath.prefix_path_agrees` compares a
masked row against a plain forward once per model before the path is trusted.

Caches live on the :class:`PrefixCache` only, never on the model; embedding replacement goes
through ``model.hooks(...)`` like every other forward in heta_lens.
"""

import copy
import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from heta_lens.hooks import names
from heta_lens.hooks.adapter import ModelAdapter, hooked_unembed


class PrefixCacheError(RuntimeError):
    """The model's KV cache did not hold the prefix it was given (an internals mismatch)."""


def cache_kwarg(hf_model: Any) -> str:
    """The keyword under which this transformers release takes a KV cache in ``forward``.

    transformers 5.24 renamed ``past_key_values`` to ``cache`` (the old name is deprecated, to
    be removed in 5.40). Read from the signature (``inspect`` follows the deprecation wrapper),
    not from a version number.
    """
    params = inspect.signature(hf_model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


@contextmanager
def bridge_cache_alias(model: Any, kwarg: str) -> Iterator[None]:
    """Let the bridge's attention wrappers see a cache passed as ``cache=``.

    transformer-lens's attention bridges look the cache up as ``kwargs["past_key_values"]``
    (``_update_kv_cache``); from transformers 5.24 the decoder layers pass it as ``cache=``.
    While the block runs, a forward pre-hook on each such wrapper copies ``cache`` to
    ``past_key_values`` when only the former is given. The hooks are removed on exit, also when
    the block raises. A no-op when the release still uses ``past_key_values``.
    """
    if kwarg == "past_key_values":
        yield
        return

    def alias(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:  # noqa: ARG001
        if kwargs.get(kwarg) is None or kwargs.get("past_key_values") is not None:
            return None
        return args, {**kwargs, "past_key_values": kwargs[kwarg]}

    wrappers = [m for m in model.modules() if hasattr(m, "_update_kv_cache")]
    handles = [m.register_forward_pre_hook(alias, with_kwargs=True) for m in wrappers]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class PrefixCache:
    """Keys/values of ``tokens[:length]`` (unmasked), grown by :meth:`extend`.

    Args:
        adapter: The model surface (``HookedTransformer`` or ``TransformerBridge``).
        tokens: The whole unmasked sequence whose prefixes are cached, ``[ctx]``.
    """

    def __init__(self, adapter: ModelAdapter, tokens: Int[Tensor, " ctx"]) -> None:
        self.adapter = adapter
        self.tokens = tokens.to(adapter.device)
        self.length = 0
        self._cache: Any = None
        bridge = adapter.kind == "bridge"
        self._kwarg = cache_kwarg(self.adapter.model.original_model) if bridge else ""

    def extend(self, end: int) -> None:
        """Run ``tokens[length:end]`` unmasked on top of the cache and append their keys/values.

        Raises:
            ValueError: ``end`` before the cached length or past the sequence.
            PrefixCacheError: The bridge's cache does not hold ``end`` positions afterwards.
        """
        if not self.length <= end <= self.tokens.numel():
            raise ValueError(f"cannot extend a prefix of {self.length} tokens to {end}")
        if end == self.length:
            return
        ids = self.tokens[None, self.length : end]
        if self.adapter.kind == "hooked":
            if self._cache is None:
                self._cache = _empty_hooked_cache(self.adapter.model)
            self.adapter.model(
                ids,
                past_kv_cache=self._cache,
                attention_mask=torch.ones_like(ids),
                return_type=None,
            )
        else:
            if self._cache is None:
                self._cache = _empty_bridge_cache(self.adapter.model)
            self._bridge_forward(ids, self._cache)
            held = int(self._cache.get_seq_length())
            if held != end:
                raise PrefixCacheError(
                    f"the model's KV cache holds {held} positions after a {end}-token prefix: "
                    "this transformers / transformer-lens pair does not fill the cache it is "
                    "given"
                )
        self.length = end

    def suffix_log_probs(
        self, embeds: Float[Tensor, "batch suffix_pos d_model"]
    ) -> Float[Tensor, "batch d_vocab"]:
        """Last-position log-probabilities of ``tokens[length:]`` after the cached prefix.

        Row b runs the suffix with its input embeddings (at ``hook_embed``) replaced by
        ``embeds[b]``; the cached prefix is shared by every row and left unchanged.

        Raises:
            ValueError: ``embeds`` does not cover exactly the uncached suffix.
        """
        ids = self.tokens[None, self.length :].expand(embeds.shape[0], -1)
        if embeds.shape[1] != ids.shape[1]:
            raise ValueError(f"embeds cover {embeds.shape[1]} positions; suffix has {ids.shape[1]}")

        def replace(act: Tensor, hook: object) -> Tensor:  # noqa: ARG001
            return embeds.to(act.dtype)

        with self.adapter.model.hooks(fwd_hooks=[(names.EMBED, replace)]):
            if self.adapter.kind == "hooked":
                logits = self._hooked_suffix_logits(ids)
            else:
                logits = self._bridge_suffix_logits(ids)
        return logits.log_softmax(dim=-1)

    def _hooked_suffix_logits(self, ids: Tensor) -> Tensor:
        model = self.adapter.model
        kwargs: dict[str, Any] = {}
        if self._cache is not None and self.length > 0:
            kwargs["past_kv_cache"] = _expanded_hooked_cache(self._cache, ids.shape[0])
            kwargs["attention_mask"] = torch.ones_like(ids)
        resid = model(ids, stop_at_layer=self.adapter.n_layers, **kwargs)[:, -1:]
        return hooked_unembed(model, resid)[:, -1]

    def _bridge_suffix_logits(self, ids: Tensor) -> Tensor:
        if self._cache is None or self.length == 0:
            return self.adapter.model(ids, logits_to_keep=1)[:, -1]
        cache = copy.deepcopy(self._cache)
        cache.batch_repeat_interleave(ids.shape[0])
        return self._bridge_forward(ids, cache)[:, -1]

    def _bridge_forward(self, ids: Tensor, cache: Any) -> Tensor:
        """Last-position logits of ``ids`` after (and appended to) ``cache``."""
        model = self.adapter.model
        with bridge_cache_alias(model, self._kwarg):
            return model(ids, logits_to_keep=1, use_cache=True, **{self._kwarg: cache})


def _empty_bridge_cache(model: Any) -> Any:
    from transformers import DynamicCache

    return DynamicCache(config=model.original_model.config)


def _empty_hooked_cache(model: Any) -> Any:
    from transformer_lens import TransformerLensKeyValueCache

    return TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, 1)


def _expanded_hooked_cache(cache: Any, batch: int) -> Any:
    """A frozen view of a batch-1 TL cache repeated ``batch`` times (no copy, never appended)."""
    from transformer_lens import TransformerLensKeyValueCache, TransformerLensKeyValueCacheEntry

    entries = [
        TransformerLensKeyValueCacheEntry(
            past_keys=e.past_keys.expand(batch, -1, -1, -1),
            past_values=e.past_values.expand(batch, -1, -1, -1),
            frozen=True,
        )
        for e in cache.entries
    ]
    mask = cache.previous_attention_mask.expand(batch, -1)
    return TransformerLensKeyValueCache(entries=entries, previous_attention_mask=mask, frozen=True)
