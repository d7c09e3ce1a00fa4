"""Hook-point names, built in one place.

Every string that names a TransformerLens hook point is produced here. The names are the
aliases shared by ``HookedTransformer`` (TL 3.x) and ``TransformerBridge`` (TL 3.x and 4.x).
"""

EMBED = "hook_embed"
"""Token embeddings entering block 0 (positional information is added elsewhere or in attention)."""


def attn_pattern(layer: int) -> str:
    """Attention probabilities ``[batch, head_index, query_pos, key_pos]`` of ``layer``."""
    return f"blocks.{layer}.attn.hook_pattern"


def attn_k(layer: int) -> str:
    """Key vectors ``[batch, pos, head_index|kv_head, d_head]`` of ``layer`` (before rotary)."""
    return f"blocks.{layer}.attn.hook_k"


def attn_v(layer: int) -> str:
    """Value vectors ``[batch, pos, head_index|kv_head, d_head]`` of ``layer``."""
    return f"blocks.{layer}.attn.hook_v"


def attn_out(layer: int) -> str:
    """Output of ``layer``'s attention module ``[batch, pos, d_model]`` (``TransformerBridge``:
    after ``W_O`` and ``b_O``, before any post-attention norm)."""
    return f"blocks.{layer}.attn.hook_out"


def resid_pre(layer: int) -> str:
    """Residual stream entering block ``layer``."""
    return f"blocks.{layer}.hook_resid_pre"


def resid_post(layer: int) -> str:
    """Residual stream leaving block ``layer`` (the input of block ``layer + 1``)."""
    return f"blocks.{layer}.hook_resid_post"


# Hook points of block l computed before that block's attention mixes positions: their value
# at a position depends on other positions only through blocks < l.
_BEFORE_MIXING = (
    "hook_resid_pre",
    "hook_in",
    "ln1.",
    "hook_attn_in",
    "hook_q_input",
    "hook_k_input",
    "hook_v_input",
    "attn.hook_in",
    "attn.hook_attn_in",
    "attn.hook_q_input",
    "attn.hook_k_input",
    "attn.hook_v_input",
    "attn.q.",
    "attn.k.",
    "attn.v.",
    "attn.hook_q",
    "attn.hook_k",
    "attn.hook_v",
    "attn.hook_rot_q",
    "attn.hook_rot_k",
    "attn.hook_cos",
    "attn.hook_sin",
)
_EMBEDDING = ("hook_embed", "hook_pos_embed", "embed.", "pos_embed.")


def hook_block(name: str, n_layers: int) -> int:
    """The block a hook point belongs to: ``l`` for ``blocks.{l}.…``, −1 for the embeddings,
    ``n_layers`` for anything after the last block (``ln_final``, ``unembed``)."""
    if name.startswith("blocks."):
        return int(name.split(".")[1])
    if name.startswith(_EMBEDDING) or name == "hook_embed":
        return -1
    return n_layers


def mixing_layers(name: str, n_layers: int) -> int:
    """How many attention layers (0, 1, …) mix positions before the hook point's value.

    ``blocks.{l}.hook_resid_pre``, ``ln1``, q/k/v and the attention inputs of block l: l
    layers. Everything later in block l (scores, pattern, z, result, attn_out, resid_mid,
    the MLP, resid_post): l + 1 (for scores and pattern, layer l's query row is where the
    other positions enter). The embeddings: 0; ``ln_final`` / ``unembed``: all.
    """
    block = hook_block(name, n_layers)
    if block < 0 or block >= n_layers:
        return max(block, 0)
    rest = name.split(".", 2)[2]
    before = any(rest == p or (p.endswith(".") and rest.startswith(p)) for p in _BEFORE_MIXING)
    return block if before else block + 1


def position_axis(name: str) -> int:
    """The axis of a hook point's activation that indexes the (query) position: 2 for
    attention scores and patterns ``[batch, head_index, query_pos, key_pos]``, else 1."""
    return 2 if name.endswith(("hook_pattern", "hook_attn_scores")) else 1
