"""Cost of looking inside HETA: exact HETA with and without gate_by_head / interactions (issue 24).

    PYTHONPATH=. python benchmarks/heads_interactions.py                 # tiny models + SmolLM2
    PYTHONPATH=. python benchmarks/heads_interactions.py --skip-smollm2

Four configs of full HETA (exact curvature, m probes, information on) run on the same input:
``plain``, ``+heads`` (``HetaConfig(gate_by_head=True)``), ``+interactions``
(``Exact(interactions=True)``) and ``+both`` (on SmolLM2 only ``plain`` and ``+both``, and only
``attribute``, to stay near two minutes). They run interleaved — one turn runs each once, the
order rotating from turn to turn — so load from other jobs hits all of them alike; the table gives
the median and best wall time over the turns, their ratios to ``plain``, and "paired": the median
over turns of each turn's ratio to ``plain`` (robust to load that drifts between turns). The
curvature step alone (:func:`estimate_curvature` vs :func:`estimate_curvature_interactions`, the
only place the map adds work) and the gate alone (:func:`objective_gate` vs
:func:`objective_gate_by_head` on one capture) are timed the same way. "max |Δ| scores" checks
that keeping the extras changes no score.
Since whole runs are noisy on a shared machine, the only work the map adds — per chunk of HVPs,
the L1 norm of every row block (``cross_block_norms``) instead of gathering the own block
(``own_block_products``) — is also timed on its own, on tensors of the run's shape, and set
against the run's time. Nothing is asserted.
"""

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from heta_lens import Exact, HetaConfig, attribute
from heta_lens.curvature.base import (
    estimate_curvature,
    estimate_curvature_interactions,
    hvp_chunk_for,
)
from heta_lens.gate import objective_gate, objective_gate_by_head
from heta_lens.hooks import ModelAdapter, preserved_model_state
from heta_lens.inputs import prepare

PROMPT = (
    "The Eiffel Tower is in the city of Paris, and the Colosseum is in the city of Rome, "
    "so a tourist who flies from one to the other crosses the"
)


def configs(n_probes: int) -> dict[str, HetaConfig]:
    """The four configs compared (plain full HETA and the three ways to keep the extras)."""
    plain = HetaConfig(curvature=Exact(n_probes=n_probes))
    return {
        "plain": plain,
        "+heads": plain.keeping(gate_by_head=True),
        "+interactions": plain.keeping(interactions=True),
        "+both": plain.keeping(gate_by_head=True, interactions=True),
    }


def interleaved(fns: dict[str, Callable[[], Any]], turns: int) -> dict[str, list[float]]:
    """Wall times of each function over ``turns`` turns, the order rotating every turn."""
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in names}
    for turn in range(turns):
        for name in names[turn % len(names) :] + names[: turn % len(names)]:
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return times


def _fmt(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def table(label: str, times: dict[str, list[float]], base: str) -> None:
    """A markdown table of median/best times and their ratios to ``base``."""
    print(f"\n{label}\n")
    print("| config | median | best | median / plain | best / plain | paired |")
    print("|---|---|---|---|---|---|")
    med0, best0 = statistics.median(times[base]), min(times[base])
    for name, values in times.items():
        med, best = statistics.median(values), min(values)
        paired = statistics.median(a / b for a, b in zip(values, times[base], strict=True))
        print(
            f"| {name} | {_fmt(med)} | {_fmt(best)} | {med / med0:.3f}× | {best / best0:.3f}× "
            f"| {paired:.3f}× |"
        )


def compare(
    label: str,
    model: Any,
    tokens: Tensor,
    *,
    n_probes: int,
    turns: int,
    names: tuple[str, ...] = ("plain", "+heads", "+interactions", "+both"),
    steps: bool = True,
) -> None:
    """Time attribute (and with ``steps`` the curvature step and the gate) with and without
    the extras."""
    ctx = tokens.numel() - 1
    print(f"\n### {label}: ctx {ctx}, m = {n_probes}, {turns} interleaved turns\n")
    cfgs = {name: config for name, config in configs(n_probes).items() if name in names}
    results: dict[str, Any] = {}

    def run(name: str) -> Callable[[], None]:
        def go() -> None:
            results[name] = attribute(model, tokens, config=cfgs[name])

        return go

    runs = interleaved({n: run(n) for n in cfgs}, turns)
    table("Full HETA (`attribute`)", runs, "plain")
    delta = max(float((results[n].scores - results["plain"].scores).abs().max()) for n in cfgs)
    print(f"\nmax |Δ| scores against plain: {delta:.1e}")
    if steps:
        time_steps(model, tokens, cfgs, turns)
    plain_time = statistics.median(runs["plain"])
    adapter = ModelAdapter(model)
    chunk = hvp_chunk_for(adapter, ctx, cfgs["plain"].hvp)
    bookkeeping(ctx, adapter.d_model, n_probes, chunk, adapter.dtype, plain_time)


def bookkeeping(
    ctx: int, d_model: int, n_probes: int, chunk: int, dtype: torch.dtype, run_time: float
) -> None:
    """The per-chunk bookkeeping of the plain and the map-keeping exact estimator, timed
    alone on random HVP outputs of the run's shape, summed over the run's chunks."""
    n_pairs = ctx * n_probes
    pairs = torch.cartesian_prod(torch.arange(ctx), torch.arange(n_probes))
    hv = torch.randn(min(chunk, n_pairs), ctx, d_model, dtype=dtype)
    own = torch.zeros(n_probes, ctx, d_model, dtype=dtype)
    cross = torch.zeros(n_probes, ctx, ctx, dtype=dtype)
    sub = pairs[: hv.shape[0]]
    rows = torch.arange(hv.shape[0])

    def keep_own() -> None:
        own[sub[:, 1], sub[:, 0]] = hv[rows, sub[:, 0]]

    def keep_cross() -> None:
        cross[sub[:, 1], sub[:, 0]] = hv.abs().sum(-1)

    times = interleaved({"own block": keep_own, "all blocks": keep_cross}, 200)
    n_chunks = -(-n_pairs // hv.shape[0])
    extra = (statistics.median(times["all blocks"]) - statistics.median(times["own block"])) * (
        n_chunks
    )
    print(
        f"\nBookkeeping per chunk of {hv.shape[0]} HVPs ({n_chunks} chunks): own block "
        f"{statistics.median(times['own block']) * 1e3:.3f} ms, all blocks "
        f"{statistics.median(times['all blocks']) * 1e3:.3f} ms; the difference over the run is "
        f"{extra * 1e3:.2f} ms = {extra / run_time:.2%} of the plain run's median"
    )


def time_steps(model: Any, tokens: Tensor, cfgs: dict[str, HetaConfig], turns: int) -> None:
    """The curvature step and the gate alone, with and without the extras."""
    ctx = tokens.numel() - 1
    adapter = ModelAdapter(model)
    req = prepare(adapter, tokens, None)
    with preserved_model_state(model):
        curvature = interleaved(
            {
                "plain": lambda: estimate_curvature(adapter, req, config=cfgs["plain"]),
                "+interactions": lambda: estimate_curvature_interactions(
                    adapter, req, config=cfgs["+interactions"]
                ),
            },
            turns,
        )
        capture = adapter.capture_attention(req.run_ids)
    table("Curvature step alone", curvature, "plain")
    options: dict[str, Any] = {"ctx": ctx, "queries": (ctx - 1,)}
    gate = interleaved(
        {
            "plain": lambda: objective_gate(capture, **options),
            "+heads": lambda: objective_gate_by_head(capture, **options),
        },
        max(turns, 20),
    )
    table("Gate alone (from one attention capture)", gate, "plain")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--turns", type=int, default=5, help="interleaved turns on SmolLM2")
    parser.add_argument("--probes", type=int, default=1, help="m on SmolLM2")
    parser.add_argument("--ctx", type=int, default=32, help="SmolLM2 context tokens")
    parser.add_argument("--skip-smollm2", action="store_true")
    args = parser.parse_args()
    from heta_lens.testing import tiny_bridge, tiny_hooked

    tiny_tokens = torch.tensor([1, 5, 7, 3, 9, 11, 4, 8, 2, 6, 13, 10, 12, 14, 15])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for label, model in (
        ("tiny HookedTransformer (ln, float64)", tiny_hooked("ln")),
        ("tiny TransformerBridge (Llama GQA, float64)", tiny_bridge()),
    ):
        compare(label, model, tiny_tokens, n_probes=8, turns=15)
    if args.skip_smollm2:
        return
    from heta_lens.models import load_model

    model = load_model("smollm2-135m")
    ids = ModelAdapter(model).to_tokens(PROMPT)[: args.ctx + 1]
    compare(
        "SmolLM2-135M-Instruct (bridge, float32)",
        model,
        ids,
        n_probes=args.probes,
        turns=args.turns,
        names=("plain", "+both"),
        steps=False,
    )


if __name__ == "__main__":
    main()
