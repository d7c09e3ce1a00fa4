"""AttnLRP (Achtibat et al., ICML 2024) with lxt's rules, on the Hugging Face model of a bridge.

AttnLRP is layer-wise relevance propagation written as gradient × input (Arras et al. 2025):
the backward pass of every non-linear operation is replaced by an LRP rule, then the relevance
of an input is ``E ⊙ ∂̃f/∂E`` summed over ``d_model`` (∂̃: the modified gradient). The explained
output f is the target token's **logit** at the last position, as in lxt's examples
(``logits[..., target].backward()``): LRP distributes one output neuron's value, and
log P(target) = logit − logsumexp(all logits) is not one neuron (its relevance would be that
of every logit in the vocabulary). So ``target_value`` of the result (the log-probability) is
not what the scores sum to; :func:`attnlrp_relevance` also returns the explained logit.

The rules are lxt 2.1's functions (``lxt/efficient/rules.py``: ``stop_gradient``,
``divide_gradient``, ``identity_rule_implicit``), placed where lxt's Llama patch map
(``lxt/efficient/models/llama.py`` with ``lxt/efficient/patches.py``) places them:

- RMSNorm (every ``LlamaRMSNorm``): identity rule, the normalising factor ``rsqrt(mean(x²) +
  eps)`` is a constant in the backward pass (lxt ``rms_norm_forward``);
- gated MLP (``LlamaMLP``): identity rule on the activation (lxt ``identity_rule_implicit``:
  backward ``act(x)/x``), uniform rule on ``act(gate) ⊙ up`` (gradient halved), lxt
  ``gated_mlp_forward``;
- attention: uniform rule on the two matrix products (gradient of q and k divided by 4, of v
  by 2), lxt ``wrap_attention_forward``. Here the division sits on the outputs of
  ``q_proj``/``k_proj``/``v_proj`` rather than after the rotary embedding and the GQA repeat:
  both are linear, so the modified gradient at the inputs is the same.

Why not ``lxt.efficient.monkey_patch``: on our pins (transformers 5.23/5.24) ``import
lxt.efficient`` fails — its ``__init__`` imports every model patch, and
``lxt/efficient/models/bert.py`` imports ``find_pruneable_heads_and_indices`` from
``transformers.pytorch_utils``, removed in transformers 5 — and its ``patch_attention``
replaces ``modeling_llama.ALL_ATTENTION_FUNCTIONS`` by a plain ``dict``, while transformers 5
calls ``ALL_ATTENTION_FUNCTIONS.get_interface(...)`` on it. It also patches the classes
process-wide (``LlamaMLP.forward``, ``LlamaRMSNorm.forward``, ``torch.nn.Dropout.forward``)
and irreversibly. So only ``rules.py`` (which needs nothing but torch) is loaded, from lxt's
installed files, and the rules go on a private twin of the model
(:func:`heta_lens.hooks.hf_twin.hf_twin`: the bridge's HF class sharing its tensors) through
hooks on the twin's modules (:mod:`heta_lens.hooks.lrp_rules`). The bridge itself is not run:
its attention components recompute attention without calling the HF modules.

Conservation. Every rule but one is conservative (Σ input relevance = output relevance):
linear maps without bias, residual sums, the identity and uniform rules. The softmax is not:
its relevance is the gradient × input of the attention scores, which misses the value path's
share by a bias term (AttnLRP, Sec. 3.3). Σ_i R_i is therefore close to the logit, not equal.
"""

from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from heta_lens._typing import TokensLike, typechecked
from heta_lens.hooks import ModelAdapter
from heta_lens.hooks.hf_twin import hf_architecture, hf_twin
from heta_lens.hooks.lrp_rules import apply_rules, lxt_rules
from heta_lens.inputs import Prepared
from heta_lens.methods.common import run_baseline
from heta_lens.registry import MethodSpec
from heta_lens.result import AttributionResult
from heta_lens.targets import TargetLike

SUPPORTED_ARCHITECTURES: tuple[str, ...] = ("LlamaForCausalLM",)
"""HF classes whose modules the rules are placed on (lxt's Llama patch map). lxt also patches
Qwen 2/3, Gemma 3, GPT-2 and BERT, with other module layouts; they are not wired here."""

TWIN_TOLERANCE = 1e-4
"""Largest |log P_twin − log P_bridge| of the target accepted before explaining (nats). Measured
gap: ≤ 1.5e-8 on the tiny float64 Llamas (HF's RMSNorm runs in float32, the rules' copy in
float64), 2.4e-6 on SmolLM2-135M in float32; a twin that does not compute the bridge's function
(e.g. weights processed by the bridge) misses by far more."""


@typechecked
def attnlrp_relevance(
    twin: nn.Module, prefix: Int[Tensor, " ctx"], target_id: int
) -> tuple[Float[Tensor, " ctx"], Float[Tensor, " d_vocab"]]:
    """Relevance of each prefix token for the logit of ``target_id`` after ``prefix``.

    ``twin`` must carry the rules (:func:`apply_rules`). R_i = Σ_d E_id · ∂̃logit/∂E_id, with
    E the input embeddings of ``prefix``.

    Returns:
        ``(R [ctx], logits [d_vocab])``: the relevances and the last position's logits (the
        explained value is ``logits[target_id]``).
    """
    model: Any = twin
    embed = model.get_input_embeddings()
    device = embed.weight.device
    with torch.no_grad():
        embeds = embed(prefix[None].to(device))
    with torch.enable_grad():
        leaf = embeds.detach().requires_grad_(True)
        logits = model(inputs_embeds=leaf, use_cache=False, logits_to_keep=1).logits[0, -1]
        (grad,) = torch.autograd.grad(logits[target_id], leaf)
    return (leaf.detach() * grad)[0].sum(-1), logits.detach()


def _scores(adapter: ModelAdapter, req: Prepared) -> Tensor:
    twin = hf_twin(adapter)
    handles = apply_rules(twin)
    try:
        relevance, logits = attnlrp_relevance(twin, req.prefix, req.target_id)
    finally:
        for handle in handles:
            handle.remove()
    twin_lp = float(logits.double().log_softmax(-1)[req.target_id])
    with torch.no_grad():
        model_lp = float(adapter.last_log_probs(req.prefix[None])[0, req.target_id])
    if abs(twin_lp - model_lp) > TWIN_TOLERANCE:
        raise ValueError(
            f"attnlrp: the Hugging Face twin of {adapter.architecture} gives log P(target) = "
            f"{twin_lp:.6g}, the bridge {model_lp:.6g}; were the bridge's weights processed "
            "(e.g. compatibility mode)? AttnLRP needs the unprocessed HF weights"
        )
    return relevance.to(device=adapter.device, dtype=adapter.dtype)


def _check_supported(adapter: ModelAdapter) -> None:
    architecture = hf_architecture(adapter)
    if adapter.kind != "bridge" or architecture not in SUPPORTED_ARCHITECTURES:
        raise ValueError(
            f"attnlrp supports a TransformerBridge over {', '.join(SUPPORTED_ARCHITECTURES)} "
            f"(lxt's Llama rules); unsupported architecture: {architecture} "
            f"({type(adapter.model).__name__}). Load a Llama model with backend='bridge'."
        )


@typechecked
def attnlrp(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: TargetLike = None,
    config: None = None,
) -> AttributionResult:
    """AttnLRP relevance of each context token for the target token's logit (signed).

    score_i = Σ_d E_id · ∂̃ logit_target / ∂E_id, ∂̃ the gradient with lxt's AttnLRP rules
    (module docstring); Σ_i score_i ≈ the target's logit (exact but for the softmax rule).

    Args:
        model: A ``TransformerBridge`` over a HF ``LlamaForCausalLM``.
        tokens: Token ids containing the target, or a string.
        target: Index of the explained token (default: last); token targets only.
        config: No options (``None``).

    Raises:
        ImportError: lxt is not installed.
        ValueError: A ``HookedTransformer`` or an architecture other than Llama (the message
            names it), bad tokens or target, a non-token target, or the twin does not
            reproduce the bridge's log-probability.
    """
    del config
    adapter = ModelAdapter(model)
    _check_supported(adapter)
    lxt_rules()
    return run_baseline(
        model, tokens, target=target, method="attnlrp", score_fn=_scores, signed=True
    )


METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(
        name="attnlrp",
        fn=attnlrp,
        default_config=None,
        description="AttnLRP (lxt's rules) relevance for the target's logit, Llama bridges only",
    ),
)
