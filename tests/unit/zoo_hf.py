"""Tiny random float64 Hugging Face causal LMs, one per architecture family.

Each builder returns an eval-mode HF model with 2 layers, hidden size 32, 4 query heads of
size 8 (2 key/value heads where the family has GQA), a 50-token vocabulary, 16 positions
(Llama 128, for its rope scaling) and eager attention, seeded without touching the global
RNG. Every family-specific feature that
changes what attention computes is switched on and made small enough to matter on a 7-token
context: sliding windows of 3–4 tokens, partial rotary embeddings, Llama 3.1's rope scaling
(its frequency bands fall inside the 8-dim heads), Qwen2's QKV biases, Gemma 2's soft caps.
Weights use ``initializer_range=0.2`` (not HF's 0.02, under which every attention pattern is
near uniform), and every 1-D parameter (norm weights, biases) is shifted by 0.1·N(0, 1) (HF
initialises them to identity / 0), as :func:`heta_lens.testing.tiny_llama_hf` does for norms.
"""

from collections.abc import Callable
from typing import Any

import torch

FAMILIES = (
    "gpt2",
    "gpt_neo",
    "gptj",
    "gpt_neox",
    "opt",
    "llama",
    "mistral",
    "qwen2",
    "phi3",
    "gemma2",
    "gemma3",
)
# What every family shares; token ids follow heta_lens.testing.tiny_tokenizer (w1 BOS, w2 EOS/pad).
VOCAB, HIDDEN, HEADS, KV_HEADS, HEAD_DIM, MLP, POSITIONS = 50, 32, 4, 2, 8, 64, 16
WINDOW = 3
INIT_STD = 0.2
# Families with sliding-window attention: (window in tokens, the layers that use it).
SLIDING: dict[str, tuple[int, tuple[int, ...]]] = {
    "gpt_neo": (WINDOW, (1,)),
    "mistral": (WINDOW, (0, 1)),
    "phi3": (WINDOW + 1, (0, 1)),
    "gemma2": (WINDOW, (0,)),
    "gemma3": (WINDOW, (0,)),
}
GEMMA2_CAPS = {"attn_logit_softcapping": 2.0, "final_logit_softcapping": 3.0}
_IDS: dict[str, Any] = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2}
_LLAMA_LIKE: dict[str, Any] = {
    "vocab_size": VOCAB,
    "hidden_size": HIDDEN,
    "intermediate_size": MLP,
    "num_hidden_layers": 2,
    "num_attention_heads": HEADS,
    "num_key_value_heads": KV_HEADS,
    "max_position_embeddings": POSITIONS,
    "initializer_range": INIT_STD,
    "tie_word_embeddings": False,
    **_IDS,
}


def _gpt2() -> Any:
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=VOCAB,
        n_positions=POSITIONS,
        n_embd=HIDDEN,
        n_layer=2,
        n_head=HEADS,
        n_inner=MLP,
        initializer_range=INIT_STD,
        **_IDS,
    )


def _gpt_neo() -> Any:
    from transformers import GPTNeoConfig

    return GPTNeoConfig(  # layer 0 global, layer 1 local (window_size)
        vocab_size=VOCAB,
        max_position_embeddings=POSITIONS,
        hidden_size=HIDDEN,
        num_layers=2,
        num_heads=HEADS,
        intermediate_size=MLP,
        attention_types=[[["global", "local"], 1]],
        window_size=WINDOW,
        initializer_range=INIT_STD,
        **_IDS,
    )


def _gptj() -> Any:
    from transformers import GPTJConfig

    return GPTJConfig(  # rotary on 4 of each head's 8 dims, parallel attention + MLP
        vocab_size=VOCAB,
        n_positions=POSITIONS,
        n_embd=HIDDEN,
        n_layer=2,
        n_head=HEADS,
        rotary_dim=HEAD_DIM // 2,
        n_inner=MLP,
        initializer_range=INIT_STD,
        **_IDS,
    )


def _gpt_neox() -> Any:
    from transformers import GPTNeoXConfig

    return GPTNeoXConfig(  # Pythia: partial rotary, parallel residual, QKV biases
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=HEADS,
        intermediate_size=MLP,
        max_position_embeddings=POSITIONS,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 10000.0,
            "partial_rotary_factor": 0.5,
        },
        use_parallel_residual=True,
        initializer_range=INIT_STD,
        **_IDS,
    )


def _opt() -> Any:
    from transformers import OPTConfig

    return OPTConfig(  # learned positions (offset 2), ReLU MLP, pre-norm
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        ffn_dim=MLP,
        max_position_embeddings=POSITIONS,
        num_attention_heads=HEADS,
        word_embed_proj_dim=HIDDEN,
        init_std=INIT_STD,
        dropout=0.0,
        **_IDS,
    )


def _llama() -> Any:
    from transformers import LlamaConfig

    rope = {  # Llama 3.1's scaling with bands that fall on 8-dim heads: of the wavelengths
        # 6, 63, 628 and 6283, the first is kept (< 64 / 4), the second smoothed, the others
        # divided by 8 (> 64 / 1). The extended context (128) must exceed the original (64).
        "rope_type": "llama3",
        "rope_theta": 10000.0,
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64,
    }
    return LlamaConfig(**{**_LLAMA_LIKE, "max_position_embeddings": 128}, rope_parameters=rope)


def _mistral() -> Any:
    from transformers import MistralConfig

    return MistralConfig(**_LLAMA_LIKE, head_dim=HEAD_DIM, sliding_window=WINDOW)


def _qwen2() -> Any:
    from transformers import Qwen2Config

    return Qwen2Config(**_LLAMA_LIKE)  # QKV biases (randomised below), no sliding window


def _phi3() -> Any:
    from transformers import Phi3Config

    return Phi3Config(  # fused qkv / gate_up, partial rotary (Phi-4-mini), a sliding window
        **_LLAMA_LIKE,
        original_max_position_embeddings=POSITIONS,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 10000.0,
            "partial_rotary_factor": 0.5,
        },
        sliding_window=WINDOW + 1,
    )


def _gemma2() -> Any:
    from transformers import Gemma2Config

    return Gemma2Config(  # soft caps small enough to bend these scores and logits
        **_LLAMA_LIKE,
        head_dim=HEAD_DIM,
        query_pre_attn_scalar=HEAD_DIM,
        sliding_window=WINDOW,
        layer_types=["sliding_attention", "full_attention"],
        **GEMMA2_CAPS,
    )


def _gemma3() -> Any:
    from transformers import Gemma3TextConfig

    rope = {
        "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
        "full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
    }
    return Gemma3TextConfig(  # q/k norms, pre+post norms, local and global rope bases
        **_LLAMA_LIKE,
        head_dim=HEAD_DIM,
        query_pre_attn_scalar=HEAD_DIM,
        sliding_window=WINDOW,
        layer_types=["sliding_attention", "full_attention"],
        rope_parameters=rope,
    )


CONFIGS: dict[str, Callable[[], Any]] = {
    "gpt2": _gpt2,
    "gpt_neo": _gpt_neo,
    "gptj": _gptj,
    "gpt_neox": _gpt_neox,
    "opt": _opt,
    "llama": _llama,
    "mistral": _mistral,
    "qwen2": _qwen2,
    "phi3": _phi3,
    "gemma2": _gemma2,
    "gemma3": _gemma3,
}
# The real HF class of each family (also what TransformerBridge's adapter lookup reads from
# ``config.architectures``).
HF_CLASSES: dict[str, str] = {
    "gpt2": "GPT2LMHeadModel",
    "gpt_neo": "GPTNeoForCausalLM",
    "gptj": "GPTJForCausalLM",
    "gpt_neox": "GPTNeoXForCausalLM",
    "opt": "OPTForCausalLM",
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "phi3": "Phi3ForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
    "gemma3": "Gemma3ForCausalLM",
}


def tiny_hf(family: str, *, seed: int = 0, dtype: torch.dtype = torch.float64) -> Any:
    """A tiny random HF causal LM of ``family`` (one of :data:`FAMILIES`), eager attention.

    Raises:
        ValueError: Unknown family.
    """
    if family not in CONFIGS:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    import transformers

    config = CONFIGS[family]()
    config._attn_implementation = "eager"
    config.architectures = [HF_CLASSES[family]]
    cls = getattr(transformers, HF_CLASSES[family])
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model: Any = cls(config)
        with torch.no_grad():
            for _, p in model.named_parameters():
                if p.ndim == 1:  # norm weights and biases (HF starts them at identity / 0)
                    p.add_(0.1 * torch.randn_like(p))
    return model.to(dtype=dtype).eval()


def tiny_hf_bridge(family: str, *, seed: int = 0, dtype: torch.dtype = torch.float64) -> Any:
    """A ``TransformerBridge`` over :func:`tiny_hf`, booted as TL boots a pre-loaded HF model
    (the adapter is chosen from ``config.architectures``)."""
    from transformer_lens.model_bridge import TransformerBridge

    from heta_lens.testing import tiny_tokenizer

    return TransformerBridge.boot_transformers(
        f"tiny-{family}",
        hf_model=tiny_hf(family, seed=seed, dtype=dtype),
        tokenizer=tiny_tokenizer(VOCAB),
        device="cpu",
    )
