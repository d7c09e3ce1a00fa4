"""Independent reference implementations the engine is checked against.

Nothing here calls heta_lens's adapter: captures use TransformerLens's ``run_with_cache``,
forwards use ``run_with_hooks`` with full logits, and the gate is enumerated path by path.
"""

import itertools

import torch
from torch import Tensor


def capture(model, ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """pattern [L, H, n, n], v per *query* head by explicit GQA lookup [L, n, H, d], W_O."""
    _, cache = model.run_with_cache(ids[None])
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    patterns, values = [], []
    for layer in range(n_layers):
        patterns.append(cache[f"blocks.{layer}.attn.hook_pattern"][0])
        v = cache[f"blocks.{layer}.attn.hook_v"][0]  # [n, kv or H, d]
        clip = getattr(model.cfg, "clip_qkv", None)
        if clip is not None:  # HookedTransformer clamps after hook_v (checked against attn_out)
            v = v.clamp(-clip, clip)
        group = n_heads // v.shape[1]
        values.append(torch.stack([v[:, h // group] for h in range(n_heads)], dim=1))
    return torch.stack(patterns), torch.stack(values), model.W_O.detach()


def value_norm(v: Tensor, W_O: Tensor, layer: int, head: int, pos: int) -> float:
    return float((v[layer, pos, head] @ W_O[layer, head]).abs().sum())


def brute_force_gate_terms(pattern: Tensor, v: Tensor, W_O: Tensor, *, t: int, mode: str) -> Tensor:
    """Each head's raw term [L, H, n]: every causal path through head (l, h) enumerated
    explicitly (exponential; tiny models only), unnormalised."""
    n_layers, n_heads, n, _ = pattern.shape
    mix = [
        0.5 * pattern[layer].mean(0) + 0.5 * torch.eye(n, dtype=pattern.dtype)
        for layer in range(n_layers)
    ]

    def paths_down(start: int, layers: list[int]):
        """All position sequences starting at `start` through `layers` (top to bottom)."""
        for seq in itertools.product(range(n), repeat=len(layers)):
            prev, weight = start, 1.0
            for layer, pos in zip(layers, seq, strict=True):
                weight *= float(mix[layer][prev, pos])
                prev = pos
            if weight != 0.0:
                yield prev, weight

    raw = torch.zeros(n_layers, n_heads, n, dtype=pattern.dtype)
    for layer in range(n_layers):
        above = list(range(n_layers - 1, layer, -1))
        below = list(range(layer - 1, -1, -1))
        for head in range(n_heads):
            for i in range(n):
                norm_i = value_norm(v, W_O, layer, head, i)
                if mode == "uniform":
                    raw[layer, head, i] += norm_i
                elif mode == "attention":
                    raw[layer, head, i] += float(pattern[layer, head, t, i]) * norm_i
                elif mode == "rollout":
                    for j, w in paths_down(t, above):
                        raw[layer, head, i] += w * float(pattern[layer, head, j, i]) * norm_i
                elif mode == "full_rollout":
                    for j, w in paths_down(t, above):
                        flow = w * float(pattern[layer, head, j, i]) * norm_i
                        for dest, w_below in paths_down(i, below):
                            raw[layer, head, dest] += flow * w_below
    return raw


def brute_force_gate_by_head(
    pattern: Tensor, v: Tensor, W_O: Tensor, *, t: int, mode: str
) -> Tensor:
    """Each head's term of the gate [L, H, n]: its enumerated paths over the total of all."""
    raw = brute_force_gate_terms(pattern, v, W_O, t=t, mode=mode)
    return raw / raw.sum()


def brute_force_gate(pattern: Tensor, v: Tensor, W_O: Tensor, *, t: int, mode: str) -> Tensor:
    """Enumerate every causal path explicitly (exponential; tiny models only)."""
    raw = brute_force_gate_terms(pattern, v, W_O, t=t, mode=mode).sum(dim=(0, 1))
    return raw / raw.sum()


def full_logits_with_embeds(model, ids: Tensor, embeds: Tensor) -> Tensor:
    """Full logits [batch, pos, vocab] with hook_embed replaced (run_with_hooks, no adapter)."""

    def replace(act, hook):  # noqa: ARG001
        return embeds

    return model.run_with_hooks(ids, fwd_hooks=[("hook_embed", replace)])


def embeddings(model, ids: Tensor) -> Tensor:
    _, cache = model.run_with_cache(ids[None])
    return cache["hook_embed"][0].detach()


def explicit_hessian(model, prefix: Tensor, target_id: int) -> Tensor:
    """∇²_X log P(target | X) as a dense [ctx, d, ctx, d] tensor."""
    x0 = embeddings(model, prefix)

    def g(x: Tensor) -> Tensor:
        logits = full_logits_with_embeds(model, prefix[None], x[None])
        return logits[0, -1].log_softmax(-1)[target_id]

    return torch.autograd.functional.hessian(g, x0)


def explicit_kl(model, prefix: Tensor, masked_embeds: Tensor) -> float:
    """KL(P_orig ‖ P_masked) at the last position by two separate full forwards."""
    with torch.no_grad():
        orig = model(prefix[None])[0, -1].log_softmax(-1)
        masked = full_logits_with_embeds(model, prefix[None], masked_embeds[None])[
            0, -1
        ].log_softmax(-1)
    return float(torch.nn.functional.kl_div(masked, orig, log_target=True, reduction="sum"))


def explicit_zero_mask_information(model, prefix: Tensor) -> Tensor:
    """I_i under the zero mask, one pair of plain full forwards per context token (no cache)."""
    x = embeddings(model, prefix)
    rows = []
    for i in range(prefix.numel()):
        masked = x.clone()
        masked[i] = 0.0
        rows.append(explicit_kl(model, prefix, masked))
    return torch.tensor(rows, dtype=x.dtype)


# ----------------------------------------------------------------- targets other than a token
def logits_and_activation(model, ids: Tensor, embeds: Tensor, hook_name: str | None = None):
    """Full logits [pos, vocab] with hook_embed replaced by `embeds` [pos, d], and the live
    activation of `hook_name` (batch axis dropped), via run_with_hooks."""
    store = {}

    def replace(act, hook):  # noqa: ARG001
        return embeds[None]

    def keep(act, hook):  # noqa: ARG001
        store["act"] = act[0]
        return act

    hooks = [("hook_embed", replace)] + ([(hook_name, keep)] if hook_name else [])
    logits = model.run_with_hooks(ids[None], fwd_hooks=hooks)[0]
    return logits, store.get("act")


def explicit_hessian_of(
    model, ids: Tensor, ctx: int, f, hook_name: str | None = None, *, vectorize: bool = False
) -> Tensor:
    """∇²_X f(logits, activation) [ctx, d, ctx, d], X the first ctx input-embedding rows of
    `ids` (later rows held at their embeddings); f(logits [pos, vocab], act) -> scalar.
    ``vectorize`` runs the ctx·d backward passes under vmap (same Hessian, ~10x faster)."""
    full = embeddings(model, ids)

    def g(x: Tensor) -> Tensor:
        return f(*logits_and_activation(model, ids, torch.cat([x, full[ctx:]]), hook_name))

    return torch.autograd.functional.hessian(g, full[:ctx], vectorize=vectorize)


def explicit_information_of(
    model, ids: Tensor, ctx: int, divergence, hook_name: str | None = None
) -> Tensor:
    """divergence((logits, act) original, (logits, act) with token i zeroed) for i < ctx, one
    plain forward per masked copy."""
    x = embeddings(model, ids)
    with torch.no_grad():
        orig = logits_and_activation(model, ids, x, hook_name)
        rows = []
        for i in range(ctx):
            masked = x.clone()
            masked[i] = 0.0
            rows.append(
                float(divergence(orig, logits_and_activation(model, ids, masked, hook_name)))
            )
    return torch.tensor(rows, dtype=x.dtype)


def two_way_kl(orig_logits: Tensor, masked_logits: Tensor, a: int, b: int) -> Tensor:
    """KL(softmax([l_a, l_b]) ‖ softmax([l'_a, l'_b])) from raw logits [vocab]."""
    p = torch.stack([orig_logits[a], orig_logits[b]]).log_softmax(-1)
    q = torch.stack([masked_logits[a], masked_logits[b]]).log_softmax(-1)
    return torch.nn.functional.kl_div(q, p, log_target=True, reduction="sum")


def span_gate(pattern: Tensor, v: Tensor, W_O: Tensor, *, n: int, k: int, mode: str) -> Tensor:
    """Mean of the brute-force gates of positions n-1..n+k-2, restricted to 0..n-1, renormalised."""
    raw = sum(
        brute_force_gate(pattern, v, W_O, t=t, mode=mode)[:n] for t in range(n - 1, n + k - 1)
    )
    return raw / raw.sum()


def span_gate_by_head(
    pattern: Tensor, v: Tensor, W_O: Tensor, *, n: int, k: int, mode: str
) -> Tensor:
    """:func:`span_gate` split by head [L, H, n]: each position's per-head gate (over its own
    total), summed over the span's positions, restricted to 0..n-1, over the grand total."""
    raw = sum(
        brute_force_gate_by_head(pattern, v, W_O, t=t, mode=mode)[..., :n]
        for t in range(n - 1, n + k - 1)
    )
    return raw / raw.sum()
