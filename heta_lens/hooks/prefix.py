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
- ``TransformerBridge``: the Hugging Face cache (``return_type="logits_and_cache"``,
  ``use_cache=True``; a later call passes it back as ``past_key_values``). HF derives positions
  from the cache length. Each suffix batch gets a deep copy repeated along the batch axis
  (``batch_repeat_interleave``), so the shared prefix cache is never extended by a masked row.

Caches live on the :class:`PrefixCache` only, never on the model; embedding replacement goes
through ``model.hooks(...)`` like every other forward in heta_lens.
"""

import copy
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from heta_lens.hooks import names
from heta_lens.hooks.adapter import ModelAdapter, hooked_unembed


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

    def extend(self, end: int) -> None:
        """Run ``tokens[length:end]`` unmasked on top of the cache and append their keys/values.

        Raises:
            ValueError: ``end`` before the cached length or past the sequence.
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
            past = {} if self._cache is None else {"past_key_values": self._cache}
            _, self._cache = self.adapter.model(
                ids, return_type="logits_and_cache", use_cache=True, logits_to_keep=1, **past
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
        kwargs: dict[str, Any] = {}
        if self._cache is not None and self.length > 0:
            cache = copy.deepcopy(self._cache)
            cache.batch_repeat_interleave(ids.shape[0])
            kwargs = {"past_key_values": cache, "use_cache": True}
        return self.adapter.model(ids, logits_to_keep=1, **kwargs)[:, -1]


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
