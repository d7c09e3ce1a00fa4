"""A narrow, uniform surface over ``HookedTransformer`` and ``TransformerBridge``.

The math modules (gate, curvature, information) only talk to a :class:`ModelAdapter`. It knows
the two model types, their hook points (through :mod:`heta_lens.hooks.names`) and how to run
them cheaply: embeddings can be replaced at ``hook_embed`` (gradients flow through the
replacement), and only the last position's log-probabilities are computed.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from heta_lens.hooks import names
from heta_lens.hooks.attention_stream import LayerAttention, stream_attention
from heta_lens.hooks.precision import compute_dtype

ModelKind = Literal["hooked", "bridge"]


def _bridge_type() -> type | None:
    try:
        from transformer_lens.model_bridge import TransformerBridge
    except ImportError:  # pragma: no cover - every supported TL version ships the bridge
        return None
    return TransformerBridge


def _hooked_type() -> type | None:
    try:
        from transformer_lens import HookedTransformer
    except ImportError:  # TL 4.x removed HookedTransformer
        return None
    return HookedTransformer


def model_kind(model: object) -> ModelKind:
    """Classify ``model`` as ``"hooked"`` or ``"bridge"``.

    Raises:
        TypeError: ``model`` is neither a ``HookedTransformer`` nor a ``TransformerBridge``.
    """
    bridge, hooked = _bridge_type(), _hooked_type()
    if bridge is not None and isinstance(model, bridge):
        return "bridge"
    if hooked is not None and isinstance(model, hooked):
        return "hooked"
    raise TypeError(
        "heta_lens supports transformer_lens HookedTransformer and TransformerBridge models; "
        f"got {type(model).__name__}. Wrap a Hugging Face model with "
        "TransformerBridge.boot_transformers(...) or load it with heta_lens.load_model(...)."
    )


@dataclass(frozen=True, kw_only=True)
class AttentionCapture:
    """Attention internals of one forward pass (batch of one).

    Attributes:
        pattern: Attention probabilities, ``[layer, head_index, query_pos, key_pos]``.
        v: Value vectors expanded to query heads (GQA: query head h reads kv head
            ``h // (n_heads // n_kv_heads)``), ``[layer, pos, head_index, d_head]``, as the
            attention mixes them (a HookedTransformer's ``clip_qkv`` clamp applied).
        W_O: Output projections, ``[layer, head_index, d_head, d_model]``.
    """

    pattern: Float[Tensor, "layer head_index query_pos key_pos"]
    v: Float[Tensor, "layer pos head_index d_head"]
    W_O: Float[Tensor, "layer head_index d_head d_model"]


def hooked_unembed(model: Any, resid: Tensor) -> Tensor:
    """``ln_final`` → ``unembed`` → logit soft-cap, as ``HookedTransformer.forward`` ends."""
    from transformer_lens.utilities.activation_functions import apply_softcap

    if model.cfg.normalization_type is not None:
        resid = model.ln_final(resid)
    return apply_softcap(model.unembed(resid), model.cfg.output_logits_soft_cap)


class ModelAdapter:
    """Uniform access to a TransformerLens model for the HETA engine.

    Every tensor the engine creates lives on :attr:`device`, the device of the model's
    weights, in :attr:`dtype`, the dtype it computes in: the weights' dtype, or float32 for a
    bfloat16/float16 model (:func:`heta_lens.hooks.precision.compute_dtype`; the model is
    upcast inside :func:`~heta_lens.hooks.preserved_model_state`). :attr:`param_dtype` is the
    weights' own dtype.

    Args:
        model: A ``HookedTransformer`` or a ``TransformerBridge``.

    Raises:
        TypeError: Unsupported model type.
        ValueError: The model's attention layout cannot be read (e.g. heads not divisible by
            key/value heads).
    """

    def __init__(self, model: nn.Module) -> None:
        self.model: Any = model  # TL's module surface is dynamic; typed narrowly below
        self.kind: ModelKind = model_kind(model)
        cfg = self.model.cfg  # both model types carry a TL config
        self.n_layers: int = int(cfg.n_layers)
        self.n_heads: int = int(cfg.n_heads)
        self.d_model: int = int(cfg.d_model)
        self.d_vocab: int = int(cfg.d_vocab)
        self.n_ctx: int = int(cfg.n_ctx)
        self.d_mlp: int = int(getattr(cfg, "d_mlp", None) or 0)  # 0 for attention-only models
        n_kv = getattr(cfg, "n_key_value_heads", None)
        self.n_kv_heads: int = int(n_kv) if n_kv else self.n_heads
        if self.n_heads % self.n_kv_heads != 0:
            raise ValueError(
                f"n_heads={self.n_heads} is not a multiple of n_key_value_heads={self.n_kv_heads}"
            )
        first = next(model.parameters())
        self.param_dtype: torch.dtype = first.dtype
        self.dtype: torch.dtype = compute_dtype(first.dtype)
        self.device: torch.device = first.device

    @property
    def architecture(self) -> str:
        """The model's architecture name (the HF class a bridge was booted for, or a
        ``HookedTransformer``'s ``original_architecture``), for error messages."""
        cfg = self.model.cfg
        name = getattr(cfg, "architecture", None) or getattr(cfg, "original_architecture", None)
        return str(name or getattr(cfg, "model_name", None) or type(self.model).__name__)

    @property
    def tokenizer(self) -> object | None:
        return getattr(self.model, "tokenizer", None)

    def to_tokens(self, text: str) -> Int[Tensor, " pos"]:
        """Tokenise ``text`` with the model's own ``to_tokens`` (its BOS convention).

        Never truncates (TL's default cuts at ``n_ctx`` silently): over-long input must reach
        the ``n_ctx`` check and fail loudly.
        """
        if self.tokenizer is None:
            raise ValueError("this model has no tokenizer: pass token ids instead of a string")
        return self.model.to_tokens(text, truncate=False)[0]

    def to_str_tokens(self, tokens: Int[Tensor, " pos"]) -> list[str] | None:
        """Token strings, or ``None`` when the model has no tokenizer."""
        if self.tokenizer is None:
            return None
        return [str(s) for s in self.model.to_str_tokens(tokens)]

    # ------------------------------------------------------------------ embeddings
    def embed(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        """Token embeddings exactly as they appear at ``hook_embed``."""
        return self.model.embed(tokens.to(self.device))

    def mean_embedding(self, *, chunk: int = 8192) -> Float[Tensor, " d_model"]:
        """Mean of ``embed(v)`` over the whole vocabulary (at ``hook_embed`` scale)."""
        total = torch.zeros(self.d_model, dtype=self.dtype, device=self.device)
        with torch.no_grad():
            for start in range(0, self.d_vocab, chunk):
                ids = torch.arange(start, min(start + chunk, self.d_vocab), device=self.device)
                total += self.embed(ids[None])[0].sum(0)
        return total / self.d_vocab

    def embedding_std(self, *, chunk: int = 8192) -> float:
        """Standard deviation of all entries of ``embed(v)`` over the vocabulary.

        The scale of Meng et al.'s (2022) causal-tracing noise (they use 3× this value).
        """
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        squares = torch.zeros((), dtype=torch.float64, device=self.device)
        with torch.no_grad():
            for start in range(0, self.d_vocab, chunk):
                ids = torch.arange(start, min(start + chunk, self.d_vocab), device=self.device)
                rows = self.embed(ids[None])[0].double()
                total += rows.sum()
                squares += (rows**2).sum()
        n = self.d_vocab * self.d_model
        mean = total / n
        return float(((squares / n - mean**2) * n / (n - 1)).clamp_min(0).sqrt())

    @contextmanager
    def token_embedding_offsets(
        self,
        ids: Int[Tensor, " n_ids"],
        offsets: Float[Tensor, "n_ids d_model"],
        *,
        replaceable: bool = True,
    ) -> Iterator[None]:
        """Add ``offsets[j]`` to the embedding of token id ``ids[j]``, wherever it occurs, in
        every forward inside the block.

        The offset depends on the token id, which ``hook_embed`` does not see, so this hooks
        the embedding module itself; the hook is removed on exit, also when the block raises.

        ``replaceable=True`` (default): the offset is part of the token's embedding, added
        *before* ``hook_embed``, so a forward that replaces ``hook_embed`` (a masked rerun, an
        HVP or IG path at given embeddings) replaces the offset embedding too, on both
        backends. ``False`` reproduces the placement used before the fix, on a
        ``TransformerBridge`` only: the offset is added to the embedding bridge's output,
        *after* its ``hook_embed``, so it lands on top of replaced embeddings (and a cached
        prefix gets it once where a plain forward of replaced embeddings gets it twice). On a
        ``HookedTransformer`` both are the same (its ``hook_embed`` follows the embedding module).
        """
        keys = ids.to(self.device)
        values = offsets.to(device=self.device, dtype=self.dtype)

        def add(_module: nn.Module, args: tuple[object, ...], output: Tensor) -> Tensor:
            tokens = args[0]
            if not isinstance(tokens, Tensor):
                return output
            match = (tokens[..., None] == keys).to(values.dtype)  # [..., pos, n_ids]
            return output + match @ values

        module = self.model.embed
        if replaceable and self.kind == "bridge":
            module = module.original_component
        handle = module.register_forward_hook(add)
        try:
            yield
        finally:
            handle.remove()

    # ------------------------------------------------------------------ forwards
    def last_log_probs(
        self,
        tokens: Int[Tensor, "batch pos"],
        embeds: Float[Tensor, "batch pos d_model"] | None = None,
        *,
        at_layer: int | None = None,
    ) -> Float[Tensor, "batch d_vocab"]:
        """Log-probabilities at the last position, optionally with a replaced activation.

        ``embeds`` replaces the output of ``hook_embed`` (``at_layer=None``) or the residual
        stream entering block ``at_layer`` (``blocks.{at_layer}.hook_resid_pre``); gradients
        flow into it. Only the last position is unembedded (``logits_to_keep=1`` on the
        bridge; ``stop_at_layer`` then ``ln_final``/``unembed``/soft-cap on a
        HookedTransformer).
        """
        tokens = tokens.to(self.device)
        hooks: list[tuple[str, Callable[..., Tensor]]] = []
        if embeds is not None:
            replacement = embeds

            def replace(act: Tensor, hook: object) -> Tensor:  # noqa: ARG001
                return replacement.to(act.dtype)

            point = names.EMBED if at_layer is None else names.resid_pre(at_layer)
            hooks.append((point, replace))
        model = self.model
        with model.hooks(fwd_hooks=hooks):
            if self.kind == "bridge":
                logits = model(tokens, logits_to_keep=1)[:, -1]
            else:
                logits = self._hooked_last_logits(tokens)
        return logits.log_softmax(dim=-1)

    def _hooked_last_logits(self, tokens: Tensor) -> Tensor:
        resid = self.model(tokens, stop_at_layer=self.n_layers)[:, -1:]
        return hooked_unembed(self.model, resid)[:, -1]

    def resid_pre(self, tokens: Int[Tensor, " pos"], layer: int) -> Float[Tensor, "pos d_model"]:
        """The residual stream entering block ``layer`` (detached), for one sequence."""
        if not 0 <= layer < self.n_layers:
            raise ValueError(f"layer {layer} out of range for {self.n_layers} layers")
        store: dict[str, Tensor] = {}

        def keep(act: Tensor, hook: object) -> Tensor:  # noqa: ARG001
            store["resid"] = act.detach()
            return act

        with torch.no_grad(), self.model.hooks(fwd_hooks=[(names.resid_pre(layer), keep)]):
            self.last_log_probs(tokens[None])
        return store["resid"][0]

    def capture_attention(self, tokens: Int[Tensor, " pos"]) -> AttentionCapture:
        """Attention patterns, values (expanded to query heads) and ``W_O``, without grad.

        Every layer's pattern at once (``[layer, head_index, pos, pos]``); a caller that can
        reduce one layer at a time uses :func:`heta_lens.hooks.attention_stream.
        stream_attention` instead. On a ``TransformerBridge`` the capture is checked against
        each layer's attention output (:mod:`heta_lens.hooks.attention_check`).

        Raises:
            ValueError: The hook points HETA reads did not fire, or (bridge) they do not
                reproduce the attention the model applies; the message names the architecture.
        """
        n = int(tokens.shape[-1])
        store: dict[str, Tensor] = {}

        def keep(part: LayerAttention) -> None:
            if not store:  # one buffer per field, filled layer by layer (no stacked copy)
                store["pattern"] = part.pattern.new_empty((self.n_layers, self.n_heads, n, n))
                store["v"] = part.v.new_empty((self.n_layers, *part.v.shape))
            store["pattern"][part.layer] = part.pattern
            store["v"][part.layer] = part.v

        stream_attention(self, tokens, keep)
        W_O = self.model.W_O.detach()
        return AttentionCapture(pattern=store["pattern"], v=store["v"], W_O=W_O)
