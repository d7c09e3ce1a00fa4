"""Tiny random TransformerLens models for tests, doctests and examples (no weights, offline)."""

import tempfile
from typing import Any, Literal

import torch

from heta_lens.devices import cast_floating

TinyVariant = Literal["ln", "attn_only", "gqa"]
_TOKENIZER_DIRS: list[tempfile.TemporaryDirectory[str]] = []


def tiny_hooked(
    variant: TinyVariant = "ln", *, dtype: torch.dtype = torch.float64, seed: int = 0
) -> Any:
    """A tiny random ``HookedTransformer`` (transformer-lens 3.x only).

    Variants: ``"ln"`` 2 layers, d_model 32, 4 heads, LayerNorm, GELU MLP, learned positions;
    ``"attn_only"`` 1 attention-only layer; ``"gqa"`` 2 layers, RMSNorm, rotary, gated SiLU,
    4 query heads over 2 key/value heads.
    """
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    common: dict[str, Any] = {"d_model": 32, "d_head": 8, "n_heads": 4, "n_ctx": 16, "d_vocab": 50}
    if variant == "ln":
        extra: dict[str, Any] = {
            "n_layers": 2,
            "d_mlp": 64,
            "act_fn": "gelu",
            "normalization_type": "LN",
        }
    elif variant == "attn_only":
        extra = {"n_layers": 1, "attn_only": True, "normalization_type": None}
    elif variant == "gqa":
        extra = {
            "n_layers": 2,
            "d_mlp": 64,
            "act_fn": "silu",
            "gated_mlp": True,
            "normalization_type": "RMS",
            "positional_embedding_type": "rotary",
            "rotary_dim": 8,
            "n_key_value_heads": 2,
        }
    else:
        raise ValueError(f"unknown tiny variant {variant!r}")
    cfg = HookedTransformerConfig(**common, **extra, dtype=dtype, seed=seed)
    model = HookedTransformer(cfg, move_to_device=False)
    with torch.no_grad():  # TL's init leaves biases at 0 and LN at identity: randomise them too
        gen = torch.Generator().manual_seed(seed + 1)
        for name, p in model.named_parameters():
            if name.endswith(("b_Q", "b_K", "b_V", "b_O", "b_in", "b_out", ".b", ".w")):
                p.add_(0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model.eval()


def tiny_tokenizer(vocab_size: int = 50) -> Any:
    """A word-level tokenizer over ``w0 .. w{vocab_size-1}`` (``w1`` is BOS), saved and reloaded
    from a local directory so TransformerLens can re-open it offline."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(vocab_size)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="w0"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()

    def special(word: str) -> AddedToken:
        # single_word: special tokens are matched before pre-tokenization, so without it "w13"
        # would be read as the BOS token "w1" followed by an unknown "3".
        return AddedToken(word, single_word=True, normalized=False, special=True)

    fast = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=special("w1"),
        eos_token=special("w2"),
        unk_token=special("w0"),
        pad_token=special("w2"),
    )
    # TransformerLens re-opens the tokenizer by its path, so the directory lives as long as
    # the process (removed at interpreter exit by TemporaryDirectory's finalizer).
    directory = tempfile.TemporaryDirectory(prefix="heta-lens-tok-")
    _TOKENIZER_DIRS.append(directory)
    fast.save_pretrained(directory.name)
    return AutoTokenizer.from_pretrained(directory.name)


def tiny_llama_hf(
    *, dtype: torch.dtype = torch.float64, seed: int = 0, n_kv_heads: int = 2, n_layers: int = 2
) -> Any:
    """A tiny random HF ``LlamaForCausalLM`` (eager attention): 32-dim, 4 heads, GQA.

    Drawn in float32, then cast to ``dtype`` (:func:`heta_lens.devices.cast_floating`: a
    half-precision model keeps its rotary frequencies in float32, as HF loads one)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    options: dict[str, Any] = {"rope_theta": 10000.0, "attn_implementation": "eager"}
    config = LlamaConfig(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=n_layers,
        num_attention_heads=4,
        num_key_value_heads=n_kv_heads,
        max_position_embeddings=16,
        tie_word_embeddings=False,
        **options,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model: Any = LlamaForCausalLM(config)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "norm" in name:
                    p.add_(0.1 * torch.randn_like(p))
    model.config.architectures = ["LlamaForCausalLM"]
    return cast_floating(model, dtype).eval()


def tiny_bridge(*, dtype: torch.dtype = torch.float64, seed: int = 0, n_kv_heads: int = 2) -> Any:
    """A ``TransformerBridge`` over :func:`tiny_llama_hf` (transformer-lens 3.x and 4.x)."""
    return bridge_from_hf(tiny_llama_hf(dtype=dtype, seed=seed, n_kv_heads=n_kv_heads))


def bridge_from_hf(hf_model: Any) -> Any:
    """Wrap a HF causal LM (mutated in place, as TL does) in a ``TransformerBridge``."""
    from transformer_lens.model_bridge import TransformerBridge

    first = next(hf_model.parameters())
    return TransformerBridge.boot_transformers(
        "tiny-llama",
        hf_model=hf_model,
        tokenizer=tiny_tokenizer(hf_model.config.vocab_size),
        device=first.device,
        dtype=first.dtype,
    )


def tiny_pair(*, dtype: torch.dtype = torch.float64, seed: int = 0) -> tuple[Any, Any]:
    """The same tiny Llama as a ``HookedTransformer`` and as a ``TransformerBridge`` (TL 3.x)."""
    from heta_lens.hooks.convert import hooked_from_hf_llama

    hooked = hooked_from_hf_llama(tiny_llama_hf(dtype=dtype, seed=seed), tokenizer=tiny_tokenizer())
    bridge = tiny_bridge(dtype=dtype, seed=seed)
    return hooked, bridge
