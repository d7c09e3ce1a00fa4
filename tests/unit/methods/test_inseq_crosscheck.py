"""Inseq (a dev-only dependency) as an independent cross-check of the gradient baselines.

Inseq 0.7.1 runs Captum on a Hugging Face model it wraps itself (its own embedding hook, its
own step function, its own tokenisation); we run Captum on the bridge's ``hook_embed`` forward.
Same tiny float64 Llama weights (two instances from one seed), one prompt, one target.

The comparison is made identical as follows. Explained function: log P(target) (Inseq's
``probability`` step function with ``logprob=True``). Per dimension: Inseq's raw granular
attributions (the generated step's column of ``target_attributions``, ``[ctx, d_model]``)
against ours. Per token: our registered method's scores against Inseq's granular attributions
aggregated by our rule (L2 norm over ``d_model`` for ``"l2"``, plain sum for ``"sum"``).
Integrated gradients: Gauss–Legendre (Captum's default; Inseq cannot pass another rule, its
``method`` argument names the attribution method), 32 steps, zero baseline — Inseq's baseline
is the UNK token's embedding at every position, and the UNK row (id 0) of the embedding table
is zeroed in both models.
"""

import pytest
import torch

import heta_lens as H
from heta_lens.hooks import ModelAdapter, preserved_model_state
from heta_lens.methods.gradients import (
    InputXGradientConfig,
    IntegratedGradientsConfig,
    SaliencyConfig,
    input_x_gradient_dims,
    integrated_gradients_dims,
    saliency_dims,
)
from heta_lens.targets import prepare_target
from heta_lens.testing import bridge_from_hf, tiny_llama_hf, tiny_tokenizer

pytestmark = pytest.mark.bridge

PROMPT = "w1 w5 w7 w3 w9 w11 w4 w8"
TOKENS = torch.tensor([1, 5, 7, 3, 9, 11, 4, 8, 6])
TARGET = 8  # " w6" after the prompt
IG = IntegratedGradientsConfig(n_steps=32, method="gausslegendre", baseline="zero")


def _hf():
    hf = tiny_llama_hf(seed=3)
    with torch.no_grad():
        hf.model.embed_tokens.weight[0].zero_()  # UNK: Inseq's IG baseline token
    return hf


def inseq_dims(method: str, **kwargs) -> torch.Tensor:
    """Inseq's per-dimension attributions ``[ctx, d_model]`` of log P(w6 | prompt)."""
    import inseq

    model = inseq.load_model(_hf(), method, tokenizer=tiny_tokenizer())
    out = model.attribute(
        PROMPT,
        f"{PROMPT} w6",
        attributed_fn="probability",
        logprob=True,
        show_progress=False,
        **kwargs,
    )
    attribution = out.sequence_attributions[0]
    assert [t.token for t in attribution.target][:TARGET] == PROMPT.split()
    assert attribution.target_attributions.dtype == torch.float32
    return attribution.target_attributions[:TARGET, 0].double()


def ours_dims(dims_fn) -> torch.Tensor:
    bridge = bridge_from_hf(_hf())
    adapter = ModelAdapter(bridge)
    with preserved_model_state(bridge):
        return dims_fn(adapter, prepare_target(adapter, TOKENS, TARGET))


@pytest.mark.parametrize(
    ("inseq_method", "ours", "dims_fn", "config", "kwargs"),
    [
        ("saliency", "saliency", saliency_dims, SaliencyConfig(aggregate="l2"), {}),
        (
            "input_x_gradient",
            "input_x_gradient",
            input_x_gradient_dims,
            InputXGradientConfig(aggregate="sum"),
            {},
        ),
        (
            "integrated_gradients",
            "integrated_gradients",
            lambda a, r: integrated_gradients_dims(a, r, config=IG),
            IG,
            {"n_steps": 32, "internal_batch_size": 16},
        ),
    ],
)
def test_inseq_agrees_with_our_method(inseq_method, ours, dims_fn, config, kwargs):
    """Inseq hands its attributions back in float32: each is our float64 value rounded to
    float32 (relative error ≤ 2⁻²⁴; measured max 5.9e-8 for saliency), and an aggregate of
    rounded values is off by at most 2⁻²⁴ Σ_d |x_d|. Bounds: twice that."""
    theirs = inseq_dims(inseq_method, **kwargs)
    mine = ours_dims(dims_fn)
    torch.testing.assert_close(mine, theirs, rtol=2**-23, atol=0)
    scores = H.get_method(ours)(bridge_from_hf(_hf()), TOKENS, target=TARGET, config=config)
    agg = theirs.norm(dim=-1) if config.aggregate == "l2" else theirs.sum(dim=-1)
    bound = 2**-23 * theirs.abs().sum(dim=-1)
    assert bool(((scores.scores - agg).abs() <= bound).all())
