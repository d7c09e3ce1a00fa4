"""Build a ``HookedTransformer`` from a Hugging Face Llama-family model, offline.

TransformerLens's ``from_pretrained`` looks the model name up in its registry and may reach the
hub; SmolLM2 is not in that registry. We build the ``HookedTransformerConfig`` from the HF
config instead and load the weights with TL's own Llama weight converter.
"""

from typing import Any

import torch


def _rope_theta(hf_config: Any) -> float:
    theta = getattr(hf_config, "rope_theta", None)
    if theta is None:
        params = getattr(hf_config, "rope_parameters", None) or {}
        theta = params.get("rope_theta", 10000.0)
    return float(theta)


def _llama_hooked_config(hf_config: Any, *, dtype: torch.dtype = torch.float32) -> Any:
    """A ``HookedTransformerConfig`` equivalent to a HF ``LlamaConfig`` (RMS, RoPE, gated SiLU).

    Raises:
        ValueError: ``hf_config`` is not a Llama-family config TL's converter handles.
        ImportError: transformer-lens 4.x (no ``HookedTransformer``).
    """
    from transformer_lens import HookedTransformerConfig

    if getattr(hf_config, "model_type", None) not in {"llama", "mistral"}:
        raise ValueError(
            f"backend='hooked' supports Llama-family models only; got model_type="
            f"{getattr(hf_config, 'model_type', None)!r}. Use backend='bridge'."
        )
    n_heads = int(hf_config.num_attention_heads)
    d_head = int(getattr(hf_config, "head_dim", None) or hf_config.hidden_size // n_heads)
    n_kv = int(getattr(hf_config, "num_key_value_heads", None) or n_heads)
    return HookedTransformerConfig(
        n_layers=int(hf_config.num_hidden_layers),
        d_model=int(hf_config.hidden_size),
        d_head=d_head,
        n_heads=n_heads,
        n_key_value_heads=n_kv if n_kv != n_heads else None,
        d_mlp=int(hf_config.intermediate_size),
        d_vocab=int(hf_config.vocab_size),
        n_ctx=int(hf_config.max_position_embeddings),
        act_fn="silu",
        normalization_type="RMS",
        eps=float(hf_config.rms_norm_eps),
        positional_embedding_type="rotary",
        rotary_base=_rope_theta(hf_config),
        rotary_adjacent_pairs=False,
        rotary_dim=d_head,
        gated_mlp=True,
        final_rms=True,
        original_architecture="LlamaForCausalLM",
        default_prepend_bos=False,
        dtype=dtype,
    )


def hooked_from_hf_llama(
    hf_model: Any, *, tokenizer: Any = None, dtype: torch.dtype | None = None
) -> Any:
    """Convert a HF Llama-family causal LM into an equivalent ``HookedTransformer``.

    No weight processing (no LayerNorm folding, no centering), so activations match HF's.
    Logits agree with the HF model to float32 round-off; in float64 they agree to ~1e-8
    because HF computes the RoPE angles in float32.

    Args:
        hf_model: A ``LlamaForCausalLM``-like model (weights already dequantised).
        tokenizer: Optional tokenizer attached to the result.
        dtype: Result dtype (default: the HF model's).
    """
    from transformer_lens import HookedTransformer
    from transformer_lens.pretrained.weight_conversions.llama import convert_llama_weights

    resolved: torch.dtype = next(hf_model.parameters()).dtype if dtype is None else dtype
    cfg = _llama_hooked_config(hf_model.config, dtype=resolved)
    model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False)
    state = convert_llama_weights(hf_model, cfg)
    model.load_and_process_state_dict(
        {k: v.to(resolved) for k, v in state.items()},
        fold_ln=False,
        center_writing_weights=False,
        center_unembed=False,
        fold_value_biases=False,
        refactor_factored_attn_matrices=False,
    )
    return model.eval()
