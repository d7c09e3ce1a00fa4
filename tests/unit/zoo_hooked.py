"""Tiny random float64 ``HookedTransformer``s, one per architecture feature of TL 3.9.

Every model has 2 layers, d_model 32, 4 heads of 8, d_vocab 50, n_ctx 16 (and a 64-wide MLP
unless attention-only). ``FEATURES`` switches on one feature of ``HookedTransformerConfig``
each; ``FAMILIES`` copies the flags ``transformer_lens.loading_from_pretrained.
convert_hf_model_config`` sets for a real family, at tiny size. TL initialises biases to 0 and
norm weights to 1 (and sink logits to 0), which would hide a bias or gain read from the wrong
place, so :func:`build` adds small random noise to all of them, as
:func:`heta_lens.testing.tiny_hooked` does (plus the unembedding bias and the sinks).
"""

from functools import cache
from typing import Any

import torch

COMMON: dict[str, Any] = {
    "n_layers": 2,
    "d_model": 32,
    "d_head": 8,
    "n_heads": 4,
    "n_ctx": 16,
    "d_vocab": 50,
    "d_mlp": 64,
    "act_fn": "gelu",
    "normalization_type": "LN",
}
ROTARY: dict[str, Any] = {"positional_embedding_type": "rotary"}
LLAMA: dict[str, Any] = {
    **ROTARY,
    "act_fn": "silu",
    "gated_mlp": True,
    "normalization_type": "RMS",
    "final_rms": True,
    "rotary_adjacent_pairs": False,
    "rotary_dim": 8,
}
WINDOW = 3  # at 7 tokens a window of 3 hides positions from a local layer's queries

FEATURES: dict[str, dict[str, Any]] = {
    "gpt2_ln": {},
    "parallel_attn_mlp": {"parallel_attn_mlp": True},
    "rotary_partial_adjacent": {**ROTARY, "rotary_dim": 4, "rotary_adjacent_pairs": True},
    "rotary_neox": {**ROTARY, "rotary_dim": 4, "rotary_adjacent_pairs": False},
    "alibi": {"positional_embedding_type": "alibi"},
    "shortformer": {"positional_embedding_type": "shortformer"},
    "local_attention": {
        "use_local_attn": True,
        "attn_types": ["global", "local"],
        "window_size": WINDOW,
    },
    "soft_caps": {"attn_scores_soft_cap": 1.5, "output_logits_soft_cap": 2.0},
    "pre_post_norms": {"normalization_type": "RMS", "use_normalization_before_and_after": True},
    "qk_norm": {**ROTARY, "use_qk_norm": True},
    "gqa": {**ROTARY, "n_key_value_heads": 2},
    # Features beyond the brief's list that TL 3.9's HookedTransformer also has:
    "attn_only": {"attn_only": True},
    "ln_pre": {"normalization_type": "LNPre"},
    "rms_pre": {"normalization_type": "RMSPre"},
    "no_attn_scale_inverse_layer_idx": {
        "use_attn_scale": False,
        "scale_attn_by_inverse_layer_idx": True,
    },
    "post_embedding_ln": {"post_embedding_ln": True},
    "attention_sinks": {**ROTARY, "use_attention_sinks": True},
    "clip_qkv": {"clip_qkv": 0.3},
    "moe": {**LLAMA, "num_experts": 4, "experts_per_token": 2, "norm_topk_prob": True},
    "solu_ln": {"act_fn": "solu_ln"},
    "split_qkv_attn_result": {"use_split_qkv_input": True, "use_attn_result": True},
    "bidirectional": {"attention_dir": "bidirectional"},
    "gqa_ungrouped": {**ROTARY, "n_key_value_heads": 2, "ungroup_grouped_query_attention": True},
    # Qwen-1 past its training length (4 < 7 tokens): log-n query scaling; a rotary base that
    # grows with the sequence length (which rules out prefix-KV reruns).
    "logn_attn": {**LLAMA, "use_logn_attn": True, "train_seq_length": 4},
    "dynamic_ntk": {**LLAMA, "use_dynamic_ntk_rope": True, "train_seq_length": 4},
}

FAMILIES: dict[str, dict[str, Any]] = {
    "gptj_like": {
        **ROTARY,
        "parallel_attn_mlp": True,
        "rotary_dim": 4,
        "rotary_adjacent_pairs": True,
        "act_fn": "gelu_new",
    },
    "neox_like": {
        **ROTARY,
        "parallel_attn_mlp": True,
        "rotary_dim": 2,  # Pythia: rotary_pct 0.25 of d_head
        "rotary_adjacent_pairs": False,
        "default_prepend_bos": False,
    },
    "llama31_like": {
        **LLAMA,
        "n_key_value_heads": 2,
        "rotary_base": 500000.0,
        "use_NTK_by_parts_rope": True,
        "NTK_by_parts_low_freq_factor": 1.0,
        "NTK_by_parts_high_freq_factor": 4.0,
        "NTK_by_parts_factor": 8.0,
        # Shorter than 8192 so that, at rotary_dim 8, some frequencies are rescaled.
        "NTK_original_ctx_len": 64,
    },
    "qwen25_like": {
        **LLAMA,
        "n_key_value_heads": 2,
        "rotary_base": 1000000,
        "default_prepend_bos": False,
        "no_b_O": None,
    },
    "phi3_like": {
        **LLAMA,
        "rotary_base": 10000.0,
        "use_local_attn": True,
        "window_size": WINDOW,
        "attn_types": ["local", "local"],
    },
    "mistral_like": {
        **LLAMA,
        "n_key_value_heads": 2,
        "use_local_attn": True,
        "window_size": WINDOW,
        "attn_types": ["local", "local"],
    },
    "gemma2_like": {
        **LLAMA,
        "act_fn": "gelu_pytorch_tanh",
        "n_key_value_heads": 2,
        "use_local_attn": True,
        "window_size": WINDOW,
        "attn_types": ["local", "global"],
        "attn_scores_soft_cap": 1.5,
        "output_logits_soft_cap": 2.0,
        "use_normalization_before_and_after": True,
        "scaled_embed": None,
    },
    "gemma3_like": {
        **LLAMA,
        "act_fn": "gelu_pytorch_tanh",
        "n_key_value_heads": 1,
        "rotary_base": 1000000,
        "rotary_base_local": 10000,
        "rotary_scaling_factor": 8.0,
        "use_local_attn": True,
        "window_size": WINDOW,
        "attn_types": ["local", "global"],
        "use_normalization_before_and_after": True,
        "use_qk_norm": True,
        "scaled_embed": None,
    },
    "bloom_like": {
        "act_fn": "gelu_fast",
        "post_embedding_ln": True,
        "positional_embedding_type": "alibi",
        "default_prepend_bos": False,
    },
    "gpt_neo_like": {
        "use_attn_scale": False,
        "use_local_attn": True,
        "window_size": WINDOW,
        "attn_types": ["global", "local"],
    },
    "gpt_oss_like": {
        **LLAMA,
        "n_key_value_heads": 2,
        "num_experts": 4,
        "experts_per_token": 2,
        "use_attention_sinks": True,
        "use_local_attn": True,
        "window_size": WINDOW,
        "attn_types": ["local", "global"],
        "use_yarn_rope": True,
        "yarn_factor": 4.0,
        "yarn_attention_factor": 1.1386,
        "yarn_original_max_position_embeddings": 8,
        "yarn_truncate": False,
    },
    "apertus_like": {
        **LLAMA,
        "act_fn": "xielu",
        "gated_mlp": False,
        "use_qk_norm": True,
        "use_NTK_by_parts_rope": True,
        "NTK_original_ctx_len": 64,
    },
    "olmo2_like": {
        **LLAMA,
        "rotary_base": 500000.0,
        "original_architecture": "Olmo2ForCausalLM",  # post-norm blocks, q/k norm over d_model
    },
}

ZOO: dict[str, dict[str, Any]] = FEATURES | FAMILIES
"""Every zoo entry's config overrides (plus builder options whose value is ``None``)."""

_OPTIONS = ("no_b_O", "scaled_embed")


@cache
def build(name: str, *, seed: int = 0) -> Any:
    """The zoo entry ``name`` as a float64 ``HookedTransformer`` in eval mode (cached: treat it
    as read-only).

    Builder options (keys with value ``None``): ``no_b_O`` zeroes the attention output bias
    (Qwen2 has none); ``scaled_embed`` multiplies ``W_E`` by √d_model (Gemma's embedding
    scale, which TL folds into ``W_E`` on loading).
    """
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    overrides = dict(ZOO[name])
    options = {k for k in _OPTIONS if k in overrides and overrides.pop(k) is None}
    cfg = HookedTransformerConfig(**(COMMON | overrides), dtype=torch.float64, seed=seed)
    model = HookedTransformer(cfg, move_to_device=False)
    # TL 3.9's MoE builds its router and experts as nn.Linear without a dtype (float32 even in
    # a float64 config), so a float64 forward fails; cast them.
    if any(p.dtype != torch.float64 for p in model.parameters()):
        model.to(torch.float64)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed + 1)
        for param_name, p in model.named_parameters():
            if param_name.endswith(
                ("b_Q", "b_K", "b_V", "b_O", "b_in", "b_out", "b_U", ".b", ".w", "sinks")
            ):
                p.add_(0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
        if "no_b_O" in options:
            for block in model.blocks:
                block.attn.b_O.zero_()
        if "scaled_embed" in options:
            model.embed.W_E.mul_(cfg.d_model**0.5)
        if cfg.positional_embedding_type == "alibi":
            # TL builds its ALiBi table lazily at the first key length and slices it later;
            # start from the largest, so shorter runs read offset rows as they do in practice.
            model(torch.zeros(1, cfg.n_ctx, dtype=torch.long), return_type=None)
    return model.eval()
