"""Causal intervention sites (embed, resid:L / mid, edges) against independent oracles.

Oracles: TransformerLens's ``patching.get_act_patch_resid_pre`` (the resid site at every
layer, one corrupted cache per position), a hand-written float64 Llama forward that patches
the attention edges i → q per head (:func:`_edge_log_p`, from the HF weights, no hooks), a
local-attention model where a source outside the window cannot reach the readout, and
carrier models whose prediction depends on one position only.
"""

import pytest
import torch

from heta_lens.evals.metrics.causal import causal_scores, group_effect, token_effects
from heta_lens.evals.metrics.causal_sites import check_site, metric_key, resolve_site
from heta_lens.hooks.guard import hook_point_hook_count
from heta_lens.hooks.patching import PatchSite
from heta_lens.testing import tiny_llama_hf
from tests.conftest import make_model, model_params, oracle_tolerance
from tests.unit.evals.test_metrics_soft import CONTENT, OUT, POS

TOKENS = torch.tensor([1, 5, 7, 3, 9, 11, 4, 8])
TARGET = 7


def _effects(model, site, corruption="noise", n_draws=2, tokens=TOKENS):
    return token_effects(
        model,
        tokens,
        target=TARGET,
        corruption=corruption,
        n_draws=n_draws,
        generator=torch.Generator().manual_seed(5),
        site=site,
    )


@pytest.mark.parametrize("model_id", model_params(["hooked-ln", "hooked-gqa", "bridge"]))
def test_resid0_is_the_embed_intervention(model_id):
    """Block 0's input at position i is a position-wise function of token i's embedding
    (hooked-ln: embedding + learned positional embedding; gqa/bridge: the embedding itself,
    rotary acting inside attention), so patching it from the corrupted run is corrupting the
    embedding: same Δ, same corrupted rows."""
    model = make_model(model_id)
    embed, resid0 = _effects(model, "embed"), _effects(model, "resid:0")
    assert resid0.site == "resid:0" and embed.site == "embed"
    torch.testing.assert_close(resid0.corrupted, embed.corrupted, rtol=0, atol=0)
    tol = oracle_tolerance(model)
    torch.testing.assert_close(resid0.delta, embed.delta, rtol=tol["rtol"], atol=tol["atol"])
    positions = torch.tensor([0, 3, 5])
    a = group_effect(model, TOKENS, target=TARGET, positions=positions, effects=embed)
    b = group_effect(model, TOKENS, target=TARGET, positions=positions, effects=resid0)
    assert b == pytest.approx(a, rel=tol["rtol"], abs=tol["atol"])


@pytest.mark.parametrize("model_id", model_params(["hooked-ln", "hooked-gqa", "bridge"]))
def test_resid_site_equals_transformer_lens_patching_at_every_layer(model_id):
    from transformer_lens import patching

    model = make_model(model_id)
    fx = {layer: _effects(model, f"resid:{layer}") for layer in range(2)}
    mid = _effects(model, "mid")  # 2 layers: mid is resid:1
    torch.testing.assert_close(mid.delta, fx[1].delta, rtol=0, atol=0)
    prefix = TOKENS[:TARGET][None]
    target_id = int(TOKENS[TARGET])

    def metric(logits):
        return logits[0, -1].log_softmax(-1)[target_id]

    patched = torch.zeros(2, 2, TARGET, dtype=torch.float64)  # [draw, layer, position]
    for d, rows in enumerate(fx[0].corrupted):
        for i in range(TARGET):
            x = fx[0].clean.clone()
            x[i] = rows[i]  # the corrupted run: token i alone corrupted
            corrupt = [("hook_embed", lambda act, hook, x=x: x[None].to(act.dtype))]  # noqa: ARG005
            with torch.no_grad(), model.hooks(fwd_hooks=corrupt):
                _, cache = model.run_with_cache(
                    prefix, names_filter=lambda name: name.endswith("hook_resid_pre")
                )
            with torch.no_grad():
                patched[d, :, i] = patching.get_act_patch_resid_pre(model, prefix, cache, metric)[
                    :, i
                ].double()
    # TL stores each metric value in a float32 tensor: the oracle is exact to float32 rounding
    # of log P only (as in test_metrics_causal.py).
    f32 = torch.finfo(torch.float32).eps * float(patched.abs().max())
    tol = oracle_tolerance(model)
    for layer in range(2):
        expected = fx[layer].log_p_clean - patched[:, layer].mean(0)
        torch.testing.assert_close(
            fx[layer].delta.double(), expected, rtol=tol["rtol"], atol=2 * f32
        )
    assert hook_point_hook_count(model) == 0


def _rotate(x, cos, sin):
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos[:, None] + rotated * sin[:, None]


def _qkv(hf, layer, h):
    """Per-head queries, post-rotary keys and values of residual ``h`` [pos, d_model]."""
    cfg, attn = hf.config, layer.self_attn
    n, d_head = h.shape[0], cfg.hidden_size // cfg.num_attention_heads
    x = layer.input_layernorm(h)
    q = attn.q_proj(x).view(n, cfg.num_attention_heads, d_head)
    k = attn.k_proj(x).view(n, cfg.num_key_value_heads, d_head)
    v = attn.v_proj(x).view(n, cfg.num_key_value_heads, d_head)
    cos, sin = hf.model.rotary_emb(x[None], torch.arange(n)[None])
    return _rotate(q, cos[0], sin[0]), _rotate(k, cos[0], sin[0]), v


def _head_outputs(hf, layer, q, k, v):
    """Attention output of each query row of ``q`` [query, head, d_head] over keys 0..len(k)-1,
    each query at the last positions (causal), head by head, then ``o_proj``."""
    cfg = hf.config
    group = cfg.num_attention_heads // cfg.num_key_value_heads
    n_q, n_k, d_head = q.shape[0], k.shape[0], q.shape[-1]
    z = torch.zeros_like(q)
    for head in range(cfg.num_attention_heads):
        for row in range(n_q):
            seen = n_k - n_q + row + 1  # keys this query may attend to
            scores = k[:seen, head // group] @ q[row, head] / d_head**0.5
            z[row, head] = scores.softmax(-1) @ v[:seen, head // group]
    return layer.self_attn.o_proj(z.reshape(n_q, -1))


def _block_rest(layer, h):
    return h + layer.mlp(layer.post_attention_layernorm(h))


def _run(hf, embeds):
    """Hand forward of every position: residuals entering each layer, and k, v per layer."""
    h, states = embeds, []
    for layer in hf.model.layers:
        q, k, v = _qkv(hf, layer, h)
        states.append((h, k, v))
        h = _block_rest(layer, h + _head_outputs(hf, layer, q, k, v))
    return states, h


def _edge_log_p(hf, clean, corrupted, i, target_id):
    """log P(target) with the edges i → q patched (q the last position): in every layer, q
    attends over the clean run's keys/values except position i's, which come from the run on
    ``corrupted`` embeddings; q's own key/value come from its patched state."""
    clean_states, _ = _run(hf, clean)
    corrupt_states, _ = _run(hf, corrupted)
    h_q = clean[-1]
    for layer, (h, _, _), (_, k_bad, v_bad) in zip(
        hf.model.layers, clean_states, corrupt_states, strict=True
    ):
        q, k, v = _qkv(hf, layer, torch.cat([h[:-1], h_q[None]]))
        k, v = k.clone(), v.clone()
        k[i], v[i] = k_bad[i], v_bad[i]
        h_q = _block_rest(layer, h_q + _head_outputs(hf, layer, q[-1:], k, v)[0])
    logits = hf.lm_head(hf.model.norm(h_q))
    return float(logits.log_softmax(-1)[target_id])


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("hooked", marks=pytest.mark.hooked),
        pytest.param("bridge", marks=pytest.mark.bridge),
    ],
)
@pytest.mark.parametrize("corruption", ["noise", "zero"])
def test_edge_site_equals_a_hand_written_per_head_patch(backend, corruption):
    from heta_lens.testing import tiny_pair

    hf = tiny_llama_hf(dtype=torch.float64)
    model = tiny_pair()[0] if backend == "hooked" else make_model("bridge")
    n_draws = 2 if corruption == "noise" else 1
    fx = _effects(model, "edges", corruption=corruption, n_draws=n_draws)
    target_id = int(TOKENS[TARGET])
    with torch.no_grad():
        clean = hf.model.embed_tokens(TOKENS[:TARGET])
        torch.testing.assert_close(fx.clean, clean, rtol=0, atol=0)
        _, h = _run(hf, clean)
        log_p_clean = float(hf.lm_head(hf.model.norm(h[-1])).log_softmax(-1)[target_id])
        expected = torch.zeros(TARGET, dtype=torch.float64)
        for rows in fx.corrupted:
            for i in range(TARGET):
                x = clean.clone()
                x[i] = rows[i]
                expected[i] += _edge_log_p(hf, clean, x, i, target_id) / n_draws
    expected = log_p_clean - expected
    # The hand forward reuses HF's LlamaRMSNorm (float32 inside) and takes its softmax in
    # float64; the bridge's eager attention takes it in float32, the hooked model normalises in
    # float64. Measured max |gap| over both backends and corruptions: 2.7e-8 (Δ ~ 1e-2; patching
    # the values alone, without the keys, is off by 1e-4).
    torch.testing.assert_close(fx.delta.double(), expected, rtol=0, atol=1e-7)
    assert fx.delta.abs().max() > 1e-3  # the edges do move the prediction
    assert hook_point_hook_count(model) == 0


def _local_model():
    """Two layers of local attention (window 2: query q sees keys q−1 and q)."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=2,
        d_model=32,
        d_head=8,
        n_heads=4,
        n_ctx=16,
        d_vocab=50,
        d_mlp=64,
        act_fn="gelu",
        normalization_type="LN",
        use_local_attn=True,
        attn_types=["local", "local"],
        window_size=2,
        dtype=torch.float64,
        seed=1,
    )
    return HookedTransformer(cfg, move_to_device=False).eval()


@pytest.mark.hooked
@pytest.mark.parametrize("corruption", ["noise", "zero"])
def test_a_source_that_cannot_reach_the_readout_has_no_effect(corruption):
    """q = 6 attends to 5 and 6 only: no edge i → q exists for i < 5, and at the last layer's
    input positions i < 5 reach q through no attention. Through two layers, 4 → 5 → 6 does.
    Every path from 5 to q is an edge 5 → q (layer 0 or 1), so there edges equal embed."""
    model = _local_model()
    edges, last, embed = (_effects(model, s, corruption) for s in ("edges", "resid:1", "embed"))
    # batched patched forwards vs the clean one, float64: measured exactly 0 (masked scores
    # are -inf, so the replaced keys/values get weight 0); 1e-12 bounds round-off of log P ~ 4
    for fx in (edges, last):
        assert fx.delta[:5].abs().max() < 1e-12
        assert fx.delta[5:].abs().min() > 1e-2
    assert embed.delta[4].abs() > 1e-3 and embed.delta[:4].abs().max() < 1e-12
    assert float(edges.delta[5]) == pytest.approx(float(embed.delta[5]), abs=1e-12)
    assert abs(float(edges.delta[6] - embed.delta[6])) > 1e-2  # q's own residual path


def _carrier(j: int, copy_layer: int):
    """Attention-only, no norms: layer ``copy_layer`` copies position j's token content to
    every query (keys read positions only; weight 1 − O(e^-70) on j), the other layer is zero;
    the unembedding reads the copied dimensions only (test_metrics_soft.one_position_model,
    with a second, inert layer)."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=2,
        d_model=32,
        d_head=8,
        n_heads=1,
        n_ctx=16,
        d_vocab=50,
        attn_only=True,
        normalization_type=None,
        dtype=torch.float64,
        seed=0,
    )
    model = HookedTransformer(cfg, move_to_device=False)
    gen = torch.Generator().manual_seed(j)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.embed.W_E[:, CONTENT] = torch.randn(50, 8, generator=gen, dtype=torch.float64)
        model.pos_embed.W_pos[:, POS] = torch.eye(16, dtype=torch.float64)
        attn = model.blocks[copy_layer].attn
        attn.b_Q[0, 0] = 1.0
        attn.W_K[0, j, 0] = 200.0
        attn.W_V[0, CONTENT] = torch.eye(8, dtype=torch.float64)
        attn.W_O[0, :, OUT] = torch.eye(8, dtype=torch.float64)
        model.unembed.W_U[OUT] = 3.0 * torch.randn(8, 50, generator=gen, dtype=torch.float64)
    model.eval()
    tokens = TOKENS.clone()
    with torch.no_grad():
        tokens[TARGET] = int(model(tokens[None, :TARGET])[0, -1].argmax())
    return model, tokens


@pytest.mark.hooked
@pytest.mark.parametrize(("j", "copy_layer"), [(0, 1), (3, 1), (6, 1), (3, 0)])
@pytest.mark.parametrize("site", ["embed", "resid:0", "mid", "edges"])
def test_only_the_carrier_has_an_effect_at_every_site(j, copy_layer, site):
    model, tokens = _carrier(j, copy_layer)
    fx = _effects(model, site, corruption="zero", n_draws=1, tokens=tokens)
    others = [i for i in range(TARGET) if i != j]
    assert fx.delta[others].abs().max() < 1e-12
    if site == "mid" and copy_layer == 0:
        # the content was copied into the readout by layer 0: patching position j at layer 1
        # (its residual) reaches q through no remaining attention weight
        assert fx.delta[j].abs() < 1e-12
    else:
        assert fx.delta[j] > 0.1
    oracle = torch.zeros(TARGET, dtype=torch.float64)
    oracle[j] = 1.0
    score = causal_scores(model, tokens, target=TARGET, scores=oracle, effects=fx, top=1, k=1)
    assert score.intervention_at_k == pytest.approx(float(fx.delta[j]), abs=1e-12)


def test_site_names_and_validation():
    assert resolve_site("mid", 30) == PatchSite(kind="resid", layer=15)
    assert resolve_site("mid", 1) == PatchSite(kind="resid", layer=0)
    assert resolve_site("edges", 2) == PatchSite(kind="edges")
    assert metric_key("patch_corr", "embed") == "patch_corr"
    assert metric_key("patch_corr", "resid:3") == "patch_corr@resid:3"
    for bad in ("resid", "resid:-1", "edge", "Mid", "resid:1:2"):
        with pytest.raises(ValueError, match="unknown causal site"):
            check_site(bad)
    with pytest.raises(ValueError, match="has 2 layers"):
        resolve_site("resid:2", 2)
    with pytest.raises(ValueError, match="a layer goes with"):
        PatchSite(kind="edges", layer=1)
    model = make_model("bridge")
    with pytest.raises(ValueError, match="has 2 layers"):
        token_effects(model, TOKENS, target=TARGET, site="resid:5")
    assert hook_point_hook_count(model) == 0
