"""All that touches hook points and model internals (HookedTransformer, TransformerBridge)."""

from heta_lens.hooks.adapter import AttentionCapture, ModelAdapter, ModelKind, model_kind
from heta_lens.hooks.convert import hooked_from_hf_llama
from heta_lens.hooks.guard import preserved_model_state

__all__ = [
    "AttentionCapture",
    "ModelAdapter",
    "ModelKind",
    "hooked_from_hf_llama",
    "model_kind",
    "preserved_model_state",
]
