"""Captum vs hand-written baselines: time and agreement, printed as ratios (issue 22).

    python benchmarks/captum_baselines.py                      # tiny models + SmolLM2, 2 prompts
    python benchmarks/captum_baselines.py --skip-smollm2 --reps 5

For saliency, input × gradient, integrated gradients (the registry's defaults: 32
Gauss–Legendre steps from a zero baseline, 16 path points a forward) and occlusion (Captum's
``FeatureAblation``; zero mask, 16 masked copies a forward), this times the per-dimension
attributions the registered methods now compute with Captum (``heta_lens.methods``) against
the hand-written implementations they replaced (kept below, line for line the same
algorithm), both on the same ``hook_embed`` forward through the adapter and inside the same
state guard (parameters frozen). Reported: best-of-``reps`` wall time of each, the ratio
Captum / hand-written (< 1: Captum faster), and max |Δ| and max |Δ| / max |ref| between them.

On the tiny float64 models each is also compared with an explicit oracle that bypasses the
adapter: full-sequence forwards through ``run_with_hooks`` with ``hook_embed`` replaced, one
path point (IG, with float64 quadrature weights: both implementations round them to float32 as
Captum does) or one masked copy (occlusion) at a time. Nothing is asserted.
"""

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from heta_lens.hooks import ModelAdapter, preserved_model_state
from heta_lens.inputs import Prepared, prepare
from heta_lens.masking import mask_rows, masked_copies
from heta_lens.methods import gradients as G
from heta_lens.methods.common import log_prob_fn, prefix_embeddings
from heta_lens.methods.occlusion import OcclusionConfig, occlusion_scores

IG = G.IntegratedGradientsConfig()
OCC = OcclusionConfig()
PROMPTS = (
    "The Eiffel Tower is in the city of Paris, and the Colosseum is in the city of Rome",
    "Alice gave the book to Bob because she had already read it twice, so Bob thanked Alice",
)
Impl = Callable[[ModelAdapter, Prepared], Tensor]


# ---------------------------------------------------------------- the replaced implementations
def hand_saliency(adapter: ModelAdapter, req: Prepared) -> Tensor:
    x = prefix_embeddings(adapter, req)
    return G.batch_gradients(log_prob_fn(adapter, req), x[None])[0].abs()


def hand_input_x_gradient(adapter: ModelAdapter, req: Prepared) -> Tensor:
    x = prefix_embeddings(adapter, req)
    return x * G.batch_gradients(log_prob_fn(adapter, req), x[None])[0]


def hand_integrated_gradients(adapter: ModelAdapter, req: Prepared) -> Tensor:
    x = prefix_embeddings(adapter, req)
    steps, alphas = G.quadrature(IG.n_steps, IG.method)
    return G.path_integrated_gradients(
        log_prob_fn(adapter, req),
        x,
        torch.zeros_like(x),
        step_sizes=steps,
        alphas=alphas,
        internal_batch_size=IG.internal_batch_size,
    )


def hand_occlusion(adapter: ModelAdapter, req: Prepared) -> Tensor:
    ctx = int(req.prefix.numel())
    with torch.no_grad():
        x = prefix_embeddings(adapter, req)
        replacements = mask_rows(adapter, x, OCC.mask)
        reference = adapter.last_log_probs(req.prefix[None], x[None])[0, req.target_id]
        out = torch.empty(ctx, dtype=x.dtype)
        for idx in torch.arange(ctx).split(OCC.batch_size):
            ids = req.prefix[None].expand(idx.numel(), -1)
            masked = adapter.last_log_probs(ids, masked_copies(x, replacements, idx))
            out[idx] = reference - masked[:, req.target_id]
    return out


METHODS: dict[str, tuple[Impl, Impl]] = {
    "saliency": (hand_saliency, G.saliency_dims),
    "input_x_gradient": (hand_input_x_gradient, G.input_x_gradient_dims),
    "integrated_gradients": (
        hand_integrated_gradients,
        lambda a, r: G.integrated_gradients_dims(a, r, config=IG),
    ),
    "occlusion": (hand_occlusion, lambda a, r: occlusion_scores(a, r, config=OCC)),
}


# ---------------------------------------------------------------- explicit oracles (float64)
def _explicit_f(model: Any, req: Prepared) -> Callable[[Tensor], Tensor]:
    """log P(target) from a full-sequence forward, ``hook_embed`` replaced with run_with_hooks."""

    def f(x: Tensor) -> Tensor:
        def replace(act: Tensor, hook: object) -> Tensor:  # noqa: ARG001
            return x[None]

        logits = model.run_with_hooks(req.prefix[None], fwd_hooks=[("hook_embed", replace)])
        return logits[0, -1].log_softmax(-1)[req.target_id]

    return f


def _explicit_grad(f: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    with torch.enable_grad():
        leaf = x.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(f(leaf), leaf)
    return grad


def oracle(name: str, model: Any, adapter: ModelAdapter, req: Prepared) -> Tensor:
    f, x = _explicit_f(model, req), prefix_embeddings(adapter, req)
    if name == "saliency":
        return _explicit_grad(f, x).abs()
    if name == "input_x_gradient":
        return x * _explicit_grad(f, x)
    if name == "integrated_gradients":
        nodes, weights = np.polynomial.legendre.leggauss(IG.n_steps)
        total = torch.zeros_like(x)
        for a, w in zip(0.5 * (1 + nodes), 0.5 * weights, strict=True):
            total += float(w) * _explicit_grad(f, float(a) * x)
        return total * x
    with torch.no_grad():
        reference, out = f(x), []
        for i in range(x.shape[0]):
            masked = x.clone()
            masked[i] = 0.0
            out.append(reference - f(masked))
    return torch.stack(out)


# ---------------------------------------------------------------- measurement
def _best(fn: Impl, adapter: ModelAdapter, req: Prepared, reps: int) -> tuple[Tensor, float]:
    best, out = float("inf"), torch.empty(0)
    for _ in range(reps):
        start = time.perf_counter()
        out = fn(adapter, req).detach()
        best = min(best, time.perf_counter() - start)
    return out, best


def _gap(a: Tensor, b: Tensor) -> tuple[float, float]:
    diff = float((a.double() - b.double()).abs().max())
    return diff, diff / max(float(b.double().abs().max()), 1e-300)


def compare(label: str, model: Any, prompts: list[Tensor], reps: int, with_oracle: bool) -> None:
    """One table row per method: times summed over ``prompts``, gaps maximised over them."""
    adapter = ModelAdapter(model)
    print(f"\n### {label}\n")
    cols = "| method | hand-written | Captum | Captum / hand | max abs Δ | max rel Δ |"
    print(cols + (" Δ oracle hand | Δ oracle Captum |" if with_oracle else ""))
    print("|---" * (8 if with_oracle else 6) + "|")
    with preserved_model_state(model):
        for name, (hand, captum) in METHODS.items():
            t_hand = t_captum = 0.0
            gap, rel, o_hand, o_captum = 0.0, 0.0, 0.0, 0.0
            for tokens in prompts:
                req = prepare(adapter, tokens, None)
                a, t_a = _best(hand, adapter, req, reps)
                b, t_b = _best(captum, adapter, req, reps)
                # a second, interleaved turn: each runs warm after the other
                t_a = min(t_a, _best(hand, adapter, req, reps)[1])
                t_b = min(t_b, _best(captum, adapter, req, reps)[1])
                t_hand, t_captum = t_hand + t_a, t_captum + t_b
                d, r = _gap(b, a)
                gap, rel = max(gap, d), max(rel, r)
                if with_oracle:
                    ref = oracle(name, model, adapter, req)
                    o_hand = max(o_hand, _gap(a, ref)[1])
                    o_captum = max(o_captum, _gap(b, ref)[1])
            row = (
                f"| {name} | {t_hand:.3f} s | {t_captum:.3f} s | {t_captum / t_hand:.2f}× "
                f"| {gap:.1e} | {rel:.1e} |"
            )
            print(row + (f" {o_hand:.1e} | {o_captum:.1e} |" if with_oracle else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--reps", type=int, default=2, help="best of this many runs per turn")
    parser.add_argument("--prompts", type=int, default=len(PROMPTS))
    parser.add_argument("--skip-smollm2", action="store_true")
    args = parser.parse_args()
    from heta_lens.testing import tiny_bridge, tiny_hooked

    tiny_tokens = [torch.tensor([1, 5, 7, 3, 9, 11, 4, 8, 2, 6, 13, 10, 12, 14, 15])]
    print("Times: best of reps, summed over prompts. rel Δ = max |Δ| / max |ref|.")
    print("Δ oracle: max |Δ| / max |oracle| against explicit full-sequence forwards (float64).")
    compare("tiny HookedTransformer (gqa, float64)", tiny_hooked("gqa"), tiny_tokens, 3, True)
    compare("tiny TransformerBridge (Llama, float64)", tiny_bridge(), tiny_tokens, 3, True)
    if args.skip_smollm2:
        return
    from heta_lens.models import load_model

    model = load_model("smollm2-135m")
    adapter = ModelAdapter(model)
    prompts = [adapter.to_tokens(p) for p in PROMPTS[: args.prompts]]
    ctx = ", ".join(str(int(t.numel()) - 1) for t in prompts)
    compare(f"SmolLM2-135M bridge, float32, ctx {ctx}", model, prompts, args.reps, False)


if __name__ == "__main__":
    main()
