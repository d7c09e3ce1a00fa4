"""Hook-point names, built in one place.

Every string that names a TransformerLens hook point is produced here. The names are the
aliases shared by ``HookedTransformer`` (TL 3.x) and ``TransformerBridge`` (TL 3.x and 4.x).
"""

EMBED = "hook_embed"
"""Token embeddings entering block 0 (positional information is added elsewhere or in attention)."""


def attn_pattern(layer: int) -> str:
    """Attention probabilities ``[batch, head_index, query_pos, key_pos]`` of ``layer``."""
    return f"blocks.{layer}.attn.hook_pattern"


def attn_v(layer: int) -> str:
    """Value vectors ``[batch, pos, head_index|kv_head, d_head]`` of ``layer``."""
    return f"blocks.{layer}.attn.hook_v"


def resid_pre(layer: int) -> str:
    """Residual stream entering block ``layer``."""
    return f"blocks.{layer}.hook_resid_pre"
