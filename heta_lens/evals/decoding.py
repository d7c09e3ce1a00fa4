"""Decoding-grid invariance (docs/evaluation.md): do the metrics move when the text is sampled?

The sequence-level evals explain the model's own continuation, so the decoding setting decides
the targets. For each prompt and each grid point we sample a 10-token continuation and explain
its 2nd, 4th, …, 10th tokens, exactly as the greedy instances of
:func:`heta_lens.evals.datasets.load_sequence`. Grid (``full``, the paper's): temperature
{0.2, 0.5, 0.9} × top-p {0.8, 0.9, 0.95} × top-k {20, 50, 100} × repetition penalty
{1.0, 1.2} × 3 seeds = 162 points; ``small``: temperature × top-p at top-k 50, penalty 1.0,
seed 0 (9 points).

Sampling follows Hugging Face's order: repetition penalty on the logits of tokens already in
the sequence (CTRL: l/θ if l > 0 else l·θ), temperature, top-k, then top-p (the smallest set of
tokens whose probability reaches p, the most likely always kept), then one draw from a
generator seeded by (seed, prompt uid). Identical continuations are evaluated once.

Invariance of a metric (:func:`invariance_table`): its mean over prompts at each grid point
m_g, against the greedy instances' m_0; reported as max_g |m_g − m_0| / |m_0|.
"""

import hashlib
import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from heta_lens.evals.convergence import labelled, unconverged
from heta_lens.evals.datasets import EvalInstance, sequence_targets
from heta_lens.evals.settings import row_seed
from heta_lens.hooks import ModelAdapter, preserved_model_state


@dataclass(frozen=True)
class DecodingConfig:
    """One grid point."""

    temperature: float
    top_p: float
    top_k: int
    repetition_penalty: float
    seed: int

    @property
    def name(self) -> str:
        return (
            f"t{self.temperature}-p{self.top_p}-k{self.top_k}-r{self.repetition_penalty}"
            f"-s{self.seed}"
        )


def decoding_grid(kind: Literal["full", "small"] = "full") -> list[DecodingConfig]:
    """The grid points (see the module docstring).

    Examples:
        >>> len(decoding_grid()), len(decoding_grid("small"))
        (162, 9)
    """
    temperatures, top_ps = (0.2, 0.5, 0.9), (0.8, 0.9, 0.95)
    if kind == "small":
        return [
            DecodingConfig(t, p, 50, 1.0, 0) for t, p in itertools.product(temperatures, top_ps)
        ]
    if kind != "full":
        raise ValueError(f"unknown grid {kind!r}; valid: full, small")
    return [
        DecodingConfig(t, p, k, r, s)
        for t, p, k, r, s in itertools.product(
            temperatures, top_ps, (20, 50, 100), (1.0, 1.2), (0, 1, 2)
        )
    ]


def next_token_distribution(logits: Tensor, seen: Tensor, config: DecodingConfig) -> Tensor:
    """Sampling probabilities over the vocabulary after penalty, temperature, top-k, top-p."""
    logits = logits.double().clone()
    if config.repetition_penalty != 1.0:
        ids = torch.unique(seen)
        values = logits[ids]
        theta = config.repetition_penalty
        logits[ids] = torch.where(values > 0, values / theta, values * theta)
    logits = logits / config.temperature
    k = min(config.top_k, logits.numel())
    kth = torch.topk(logits, k).values[-1]
    logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = logits.softmax(-1)
    order = torch.argsort(probs, descending=True)
    before = probs[order].cumsum(0) - probs[order]  # mass strictly above each token
    drop = order[before >= config.top_p]  # the most likely token has before = 0: always kept
    probs[drop] = 0.0
    return probs / probs.sum()


def sample_continuation(
    model: nn.Module, prompt: Tensor, *, config: DecodingConfig, n_new: int, generator: Any
) -> Tensor:
    """``prompt`` extended by ``n_new`` sampled tokens."""
    adapter = ModelAdapter(model)
    tl_model: Any = adapter.model
    ids = prompt.to(adapter.device)
    with preserved_model_state(model), torch.no_grad():
        for _ in range(n_new):
            logits = tl_model(ids[None])[0, -1]
            probs = next_token_distribution(logits, ids, config).cpu()
            next_id = torch.multinomial(probs, 1, generator=generator).to(ids.device)
            ids = torch.cat([ids, next_id])
    return ids.cpu()


def decoding_instances(
    model: nn.Module,
    greedy: Sequence[EvalInstance],
    grid: Sequence[DecodingConfig],
    *,
    n_new: int = 10,
    every: int = 2,
) -> list[EvalInstance]:
    """The greedy instances plus one instance per distinct sampled continuation.

    A sampled instance's uid is ``<prompt uid>/<digest of its tokens>``; ``meta["configs"]``
    lists the grid points that produced it and ``meta["prompt_uid"]`` its prompt.
    """
    out = list(greedy)
    for base in greedy:
        start = int(base.meta["n_prompt_tokens"])
        prompt = torch.tensor(base.tokens[:start])
        found: dict[tuple[int, ...], list[str]] = defaultdict(list)
        for config in grid:
            seed = row_seed(config.seed, base.uid, 0, "decoding")
            generator = torch.Generator().manual_seed(seed)
            ids = sample_continuation(
                model, prompt, config=config, n_new=n_new, generator=generator
            )
            found[tuple(int(t) for t in ids.tolist())].append(config.name)
        for tokens, names in found.items():
            digest = hashlib.sha256(repr(tokens).encode()).hexdigest()[:12]
            out.append(
                EvalInstance(
                    uid=f"{base.uid}/{digest}",
                    dataset=base.dataset,
                    text=base.meta.get("prompt", ""),
                    tokens=tokens,
                    targets=sequence_targets(start, n_generate=n_new, every=every),
                    meta={"prompt_uid": base.uid, "configs": names},
                )
            )
    return out


def invariance_table(
    rows: Sequence[dict[str, Any]],
    instances: Sequence[EvalInstance],
    *,
    metrics: Sequence[str] = ("soft_ns", "soft_nc", "hard_nc"),
) -> str:
    """Markdown: per method and metric, the greedy mean, the range over the grid and the
    max relative change (module docstring); unconverged methods labelled
    (:mod:`heta_lens.evals.convergence`)."""
    per_uid: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for row in rows:
        for metric in metrics:
            value = row["metrics"].get(metric)
            if value is not None:
                per_uid[(row["method"], row["uid"], metric)].append(float(value))
    greedy = [i for i in instances if "configs" not in i.meta]
    by_config: dict[str, list[str]] = defaultdict(list)  # config -> instance uids
    for instance in instances:
        for name in instance.meta.get("configs", ()):
            by_config[name].append(instance.uid)
    lines = [
        "| method | metric | greedy | min over grid | max over grid | max relative change |",
        "|---|---|---|---|---|---|",
    ]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    stalled = unconverged(rows)
    for method, metric in itertools.product(methods, metrics):

        def mean(uids: Sequence[str], method: str = method, metric: str = metric) -> float:
            values = [sum(v) / len(v) for u in uids if (v := per_uid.get((method, u, metric)))]
            return sum(values) / len(values) if values else float("nan")

        base = mean([i.uid for i in greedy])
        grid = [mean(uids) for uids in by_config.values()]
        grid = [g for g in grid if g == g]
        if not grid or base != base:
            continue
        change = max(abs(g - base) for g in grid) / abs(base) if base else float("inf")
        lines.append(
            f"| {labelled(method, stalled)} | {metric} | {base:.4f} | {min(grid):.4f} | "
            f"{max(grid):.4f} | {change:.2f} |"
        )
    return "\n".join(lines) + "\n"
