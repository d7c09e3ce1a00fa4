"""AttnLRP (lxt's rules on the HF twin of a bridge): known answers, conservation, the twin.

Oracles: closed forms from the weights by explicit matrix products (no autograd), and the
bridge's own forward for the explained logit. Float64 tiny Llamas throughout.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from heta_lens.hooks import ModelAdapter, preserved_model_state
from heta_lens.hooks.hf_twin import hf_twin
from heta_lens.hooks.lrp_rules import apply_rules, lxt_rules
from heta_lens.methods import attnlrp as attnlrp_module
from heta_lens.methods.attnlrp import attnlrp, attnlrp_relevance
from heta_lens.targets import Contrast
from heta_lens.testing import bridge_from_hf, tiny_bridge, tiny_hooked, tiny_llama_hf

pytestmark = pytest.mark.bridge

TOKENS = torch.tensor([1, 5, 7, 3, 9, 11, 4, 8, 6])
TARGET = 8  # explain TOKENS[8] after the 8-token prefix


def zeroed(*suffixes: str, n_layers: int = 1, seed: int = 0):
    """A tiny float64 HF Llama with every weight whose name ends in one of ``suffixes`` zero."""
    hf = tiny_llama_hf(n_layers=n_layers, seed=seed)
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if name.endswith(suffixes):
                p.zero_()
    return hf


def bridge_logit(bridge, prefix: torch.Tensor, target_id: int) -> float:
    with torch.no_grad():
        return float(bridge(prefix[None], logits_to_keep=1)[0, -1, target_id])


def explained(bridge, prefix: torch.Tensor, target_id: int) -> tuple[torch.Tensor, float]:
    """(R, logit) from the rule-carrying twin: the logit AttnLRP explains."""
    adapter = ModelAdapter(bridge)
    with preserved_model_state(bridge):
        twin = hf_twin(adapter)
        apply_rules(twin)
        relevance, logits = attnlrp_relevance(twin, prefix, target_id)
    return relevance, float(logits[target_id])


def _rms(x: torch.Tensor, norm) -> torch.Tensor:
    return norm.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)


def uniform_attention_answer(hf, prefix: torch.Tensor, target_id: int):
    """AttnLRP by hand for one layer with W_Q = W_K = 0 (uniform attention) and no MLP output.

    With the norms' scales constant (identity rule), token j's share of the last position's
    attention output is c_j = g · W_O rep(W_V h_j) / n (g: the logit's linear read-out of the
    residual, h_j: the normalised embedding); the uniform rule gives the value path half of it
    and the softmax path nothing (its scores are 0). So R_j = c_j / 2, plus g · E_last for the
    last token (its residual), and Σ R = logit − Σ c_j / 2.
    """
    cfg, layer = hf.config, hf.model.layers[0]
    n, n_kv, heads = prefix.numel(), cfg.num_key_value_heads, cfg.num_attention_heads
    E = hf.model.embed_tokens.weight[prefix]
    v = (_rms(E, layer.input_layernorm) @ layer.self_attn.v_proj.weight.T).view(n, n_kv, -1)
    v = v.repeat_interleave(heads // n_kv, dim=1).reshape(n, -1)  # GQA: head h reads kv h // g
    share = v @ layer.self_attn.o_proj.weight.T / n  # [n, d_model]
    resid = E[-1] + share.sum(0)
    final = hf.model.norm
    scale = torch.rsqrt(resid.pow(2).mean() + final.variance_epsilon)
    g = scale * final.weight * hf.lm_head.weight[target_id]
    relevance = share @ g / 2
    relevance[-1] += g @ E[-1]
    return relevance.detach(), float((g @ resid).detach())


def test_uniform_attention_known_answer():
    hf = zeroed("q_proj.weight", "k_proj.weight", "down_proj.weight")
    prefix, target_id = TOKENS[:TARGET], int(TOKENS[TARGET])
    expected, logit = uniform_attention_answer(hf, prefix, target_id)
    bridge = bridge_from_hf(hf)
    result = attnlrp(bridge, TOKENS, target=TARGET)
    assert result.signed and result.method == "attnlrp"
    # float64 round-off (measured max |Δ| 7e-18); the softmax path gets exactly nothing
    torch.testing.assert_close(result.scores, expected, rtol=0, atol=1e-15)
    assert explained(bridge, prefix, target_id)[1] == pytest.approx(logit, rel=0, abs=1e-15)
    # HF's RMSNorm (which the bridge runs) computes in float32, the rules' copy in float64:
    # measured |Δ logit| 4.9e-9 here
    assert bridge_logit(bridge, prefix, target_id) == pytest.approx(logit, rel=0, abs=1e-8)
    # the value path keeps half of each share: not conservative, short by exactly Σ c_j / 2
    assert abs(float(result.scores.sum()) - logit) > 10 * abs(logit)


def test_without_attention_output_relevance_is_the_last_tokens_and_conserved():
    """No attention output (W_O = 0): nothing crosses positions, and every other rule (norms,
    SiLU identity rule, uniform rule on the gated product, linear maps) conserves."""
    bridge = bridge_from_hf(zeroed("o_proj.weight", n_layers=2))
    prefix, target_id = TOKENS[:TARGET], int(TOKENS[TARGET])
    result = attnlrp(bridge, TOKENS, target=TARGET)
    assert bool((result.scores[:-1] == 0).all())
    relevance, logit = explained(bridge, prefix, target_id)
    torch.testing.assert_close(result.scores, relevance, rtol=0, atol=0)
    # lxt's identity rule divides by (x + 1e-10): measured |Σ R − logit| = 4e-12 (logit −0.22)
    assert float(result.scores.sum()) == pytest.approx(logit, rel=0, abs=1e-10)
    # against the bridge's logit (its norms in float32): measured |Δ| 1.1e-8
    assert float(result.scores.sum()) == pytest.approx(
        bridge_logit(bridge, prefix, target_id), rel=0, abs=1e-7
    )


@pytest.mark.parametrize(("seed", "measured"), [(0, 0.0209), (1, 0.0154), (2, 0.0153)])
def test_conservation_on_random_llama_is_approximate(seed, measured):
    """Σ_i R_i vs the explained logit on a random 2-layer Llama: off by the softmax rule only.

    Measured |Σ R − logit| (logits −0.23, −0.10, −0.04 for seeds 0, 1, 2): 0.0209, 0.0154,
    0.0153; bound: the measured gap rounded up in its third digit.
    """
    bridge = tiny_bridge(seed=seed)
    prefix, target_id = TOKENS[:TARGET], int(TOKENS[TARGET])
    result = attnlrp(bridge, TOKENS, target=TARGET)
    gap = abs(float(result.scores.sum()) - explained(bridge, prefix, target_id)[1])
    assert 0.0 < gap <= measured + 1e-4


def lxt_oracle(tokens: torch.Tensor, *args: str) -> tuple[torch.Tensor, float]:
    """lxt's own monkey-patched AttnLRP, in a subprocess (``lxt_reference.py``)."""
    root = Path(__file__).resolve().parents[3]
    env = os.environ | {"PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("lxt_reference.py")), *args],
        input=json.dumps(tokens.tolist()),
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    out = json.loads(done.stdout)
    return torch.tensor(out["relevance"], dtype=torch.float64), out["logit"]


def test_matches_lxts_own_monkey_patch():
    """Oracle: lxt 2.1's ``monkey_patch`` rules on the plain HF model (two shims for
    transformers 5, ``lxt_reference.py``), relevance as in lxt's quickstart."""
    ours = attnlrp(tiny_bridge(seed=0), TOKENS, target=TARGET).scores
    theirs, _ = lxt_oracle(TOKENS[: TARGET + 1], "tiny", "0")
    # lxt computes the norms in float32 (as HF does), the rules' copy here in float64:
    # measured max |Δ| 5.4e-9 (largest |R| 0.197)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-8)


def test_twin_shares_the_bridges_tensors_and_reproduces_it():
    bridge = tiny_bridge()
    adapter = ModelAdapter(bridge)
    with preserved_model_state(bridge):
        twin = hf_twin(adapter)
        theirs = {id(p) for p in bridge.parameters()}
        assert all(id(p) in theirs for p in twin.parameters())
        with torch.no_grad():
            ours = twin(TOKENS[None], logits_to_keep=1).logits[0, -1].log_softmax(-1)
            ref = adapter.last_log_probs(TOKENS[None])[0]
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)


def test_bridge_is_left_as_it_was():
    bridge = tiny_bridge()
    before = bridge(TOKENS[None]).detach()
    flags = [p.requires_grad for p in bridge.parameters()]
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in bridge.modules())
    attnlrp(bridge, TOKENS, target=TARGET)
    assert torch.equal(bridge(TOKENS[None]).detach(), before)
    assert [p.requires_grad for p in bridge.parameters()] == flags
    assert hooks == sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in bridge.modules())


@pytest.mark.hooked
def test_hooked_transformer_is_refused_by_name():
    with pytest.raises(ValueError, match="unsupported architecture.*HookedTransformer"):
        attnlrp(tiny_hooked("gqa"), TOKENS, target=TARGET)


def test_non_llama_bridge_is_refused_by_name():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=16,
        attn_implementation="eager",
    )
    qwen = Qwen2ForCausalLM(config).double().eval()
    qwen.config.architectures = ["Qwen2ForCausalLM"]
    with pytest.raises(ValueError, match="unsupported architecture: Qwen2ForCausalLM"):
        attnlrp(bridge_from_hf(qwen), TOKENS, target=TARGET)


def test_only_token_targets():
    with pytest.raises(ValueError, match="attnlrp does not support contrast"):
        attnlrp(tiny_bridge(), TOKENS, target=Contrast(8, 6, position=TARGET - 1))


def test_missing_lxt_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "lxt" else real(name, *a)
    )
    lxt_rules.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"lxt==2\.1 \(or pip install 'heta-lens\[lrp\]'\)"):
            attnlrp(tiny_bridge(), TOKENS, target=TARGET)
    finally:
        monkeypatch.undo()
        lxt_rules.cache_clear()


def test_a_twin_that_is_not_the_bridge_is_refused(monkeypatch):
    """The twin's log P(target) is checked against the bridge's before anything is returned."""
    other = ModelAdapter(tiny_bridge(seed=1))
    monkeypatch.setattr(attnlrp_module, "hf_twin", lambda _adapter: hf_twin(other))
    with pytest.raises(ValueError, match="the Hugging Face twin of .* gives log P"):
        attnlrp(tiny_bridge(seed=0), TOKENS, target=TARGET)
