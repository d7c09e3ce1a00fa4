"""ReAGent (Zhao & Shan 2024): importance from random token replacement, stopped by a top-n check.

Follows the official code (github.com/casszhao/ReAGent,
``src/rationalization/rationalizer/importance_score_evaluator/delta_prob.py``,
``stopping_condition_evaluator/top_k.py``, ``token_replacement/token_replacer/{uniform,
ranking}.py``, ``aggregate_rationalizer.py``; defaults from
``config/gpt2/top3_replace0.3_max5000_batch8.json``). ``n_probes`` independent probes run in
parallel, each with logit scores ``s ∈ R^ctx`` initialised ``U(0, 1)``. One step of a probe:

1. Replace each context token independently with probability ``replace_ratio`` (set R) by a
   sampled replacement; ``p̂ = P(x_T | replaced prefix)``, ``Δ = P(x_T | x_<T) − p̂``.
2. ``s_i += logit(0.5 + 0.5·d_i)`` with ``d_i = Δ`` for i ∈ R and ``d_i = −Δ`` otherwise
   (``0.5 + 0.5·d_i`` clamped to ``[1e-7, 1 − 1e-7]``; the official code has no clamp and
   gives ±inf only when a probability is exactly 0 or 1).
3. Stopping check: keep the ``keep_top`` tokens ranked highest by ``softmax(s)``, replace all
   others by sampled replacements; the probe stops (its scores freeze) once ``x_T`` is among
   the model's ``top_n`` predictions for that sequence.

After every probe has stopped or ``max_steps`` steps, the scores are the mean of ``softmax(s)``
over the stopped probes (official ``mean_important_score``), or over all probes when none stopped
(the official code divides by zero there). Scores are positive and sum to 1.

Replacement tokens. The paper samples them from RoBERTa / POS-tag-matched vocabulary words; no
second model is available offline, so:

- ``"model_topk"`` (default): for position i, a token drawn uniformly from the explained model's
  own ``top_k_replacements`` most probable next tokens given the unperturbed ``x_<i``, the
  original ``x_i`` excluded (so a replacement always changes the token). Position 0 has no
  prefix and keeps its token, as the official inferential sampler does (it still counts as
  "replaced" in step 2, as there).
- ``"random"``: uniform random ids in ``[0, d_vocab)`` (the official ``UniformTokenSampler``).

Randomness comes from one ``torch.Generator`` seeded with ``seed`` (global RNG untouched).
Replaced tokens enter through their ids (``ModelAdapter.last_log_probs``); no embedding mask.

Cost per call (forwards): 1 (result's log-probability) + 1 (unperturbed) + ``ctx − 1``
single-prefix forwards for ``"model_topk"`` candidates + one batched forward per step with at
most ``2·n_probes`` rows (the stopping check of step t runs together with the replacements of
step t + 1), split into chunks of ``batch_size`` rows; at most ``max_steps`` steps.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

from heta_lens._typing import TokensLike, typechecked
from heta_lens.hooks import ModelAdapter
from heta_lens.inputs import Prepared
from heta_lens.methods.common import run_baseline
from heta_lens.registry import MethodSpec
from heta_lens.result import AttributionResult
from heta_lens.targets import TargetLike

Replacement = Literal["model_topk", "random"]
NextLogProbs = Callable[[Tensor], Tensor]
"""``fn(ids [batch, ctx]) -> log P(· | ids) at the last position [batch, d_vocab]``."""

_EPS = 1e-7


@dataclass(frozen=True, kw_only=True)
class ReagentConfig:
    """Options of :func:`reagent` (official values where the official code has one).

    Attributes:
        replace_ratio: Probability of replacing each token in an update step (official 0.3).
        top_n: Stopping tolerance: stop when the target is in the model's top-n predictions
            (official ``stopping_condition.top_k.tolerance`` = 3).
        keep_top: Tokens kept (by importance) in the stopping check (official ``rational.size``
            = 8).
        n_probes: Independent probes averaged (official aggregation ``batch_size`` = 8).
        max_steps: Step limit per call. The official value is 5000 (a GPU budget); on a
            2-core CPU one step of SmolLM2-135M at ~40 tokens costs about a second, and with
            ``"random"`` replacement the stopping condition is rarely met, so a call could run
            for hours. The default 100 bounds a call to minutes; pass 5000 to match the paper.
        replacement: ``"model_topk"`` (default) or ``"random"``; see the module docstring.
        top_k_replacements: Candidates per position for ``"model_topk"`` (ours; no official
            counterpart: the official inferential sampler takes the argmax of another model).
        batch_size: Rows per batched forward.
        seed: Seed of the private generator.
    """

    replace_ratio: float = 0.3
    top_n: int = 3
    keep_top: int = 8
    n_probes: int = 8
    max_steps: int = 100
    replacement: Replacement = "model_topk"
    top_k_replacements: int = 10
    batch_size: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.replace_ratio < 1.0:
            raise ValueError(f"replace_ratio must lie in (0, 1); got {self.replace_ratio}")
        counts = ("top_n", "keep_top", "n_probes", "max_steps", "top_k_replacements", "batch_size")
        for name in counts:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if self.replacement not in ("model_topk", "random"):
            raise ValueError(f"unknown replacement {self.replacement!r}; valid: model_topk, random")


@dataclass(frozen=True, kw_only=True)
class ReagentRun:
    """Outcome of :func:`reagent_core`: scores, steps taken and which probes stopped."""

    scores: Float[Tensor, " ctx"]
    steps: int
    stopped: Bool[Tensor, " probe"]


def _sample(
    n: int,
    ctx: int,
    candidates: Tensor | None,
    d_vocab: int,
    gen: torch.Generator,
    device: torch.device,
) -> Tensor:
    """``n`` rows of replacement ids, one per position: drawn from the CPU generator ``gen``
    (the same draws on every device), then moved to ``device``."""
    if candidates is None:
        return torch.randint(0, d_vocab, (n, ctx), generator=gen).to(device)
    pick = torch.randint(0, candidates.shape[1], (n, ctx), generator=gen).to(device)
    return candidates[torch.arange(ctx, device=device), pick]


def reagent_core(
    prefix: Int[Tensor, " ctx"],
    target_id: int,
    next_log_probs: NextLogProbs,
    *,
    candidates: Int[Tensor, "ctx k"] | None,
    d_vocab: int,
    config: ReagentConfig,
) -> ReagentRun:
    """The ReAGent loop on any next-token function (module docstring, steps 1–3).

    Random numbers come from a private CPU generator seeded with ``config.seed`` and are moved
    to ``prefix``'s device, so a run draws the same numbers on every device; the loop's state
    (scores, masks, which probes are active) stays on that device. Each step synchronises
    with the host once, to learn whether any probe is still active.

    Args:
        prefix: The context ids, ``[ctx]``.
        target_id: The explained token.
        next_log_probs: Last-position log-probabilities of a batch of id sequences.
        candidates: Replacement candidates per position (``None``: uniform over the vocabulary).
        d_vocab: Vocabulary size (for uniform replacement).
        config: Options; ``config.seed`` seeds a private CPU generator.
    """
    gen = torch.Generator().manual_seed(config.seed)
    ids, device = prefix, prefix.device
    ctx = ids.numel()
    if candidates is not None:
        candidates = candidates.to(device)
    p_orig = next_log_probs(prefix[None])[0, target_id].exp().double()
    logits = torch.rand(config.n_probes, ctx, generator=gen, dtype=torch.float64).to(device)
    active = torch.ones(config.n_probes, dtype=torch.bool, device=device)
    stopped = torch.zeros(config.n_probes, dtype=torch.bool, device=device)

    def replaced(n: int) -> tuple[Tensor, Tensor]:
        mask = (torch.rand(n, ctx, generator=gen) < config.replace_ratio).to(device)
        return torch.where(mask, _sample(n, ctx, candidates, d_vocab, gen, device), ids), mask

    update_ids, update_mask = replaced(config.n_probes)
    update_out = next_log_probs(update_ids)
    steps = 0
    while True:
        steps += 1
        delta = p_orig - update_out[:, target_id].exp().double()
        signed = torch.where(update_mask, delta[:, None], -delta[:, None])
        logits[active] += torch.logit((0.5 + 0.5 * signed).clamp(_EPS, 1.0 - _EPS))
        order = logits[active].argsort(dim=-1, descending=True, stable=True)
        n_act = order.shape[0]
        keep = torch.zeros(n_act, ctx, dtype=torch.bool, device=device)
        keep.scatter_(1, order[:, : config.keep_top], True)
        check_ids = torch.where(keep, ids, _sample(n_act, ctx, candidates, d_vocab, gen, device))
        more = steps < config.max_steps
        next_ids, next_mask = replaced(n_act) if more else (ids.new_empty(0, ctx), None)
        out = next_log_probs(torch.cat([check_ids, next_ids]))
        top = out[:n_act].topk(min(config.top_n, out.shape[-1]), dim=-1).indices
        hit = (top == target_id).any(-1)
        probes = active.nonzero().flatten()
        stopped[probes[hit]] = True
        active[probes[hit]] = False
        if not more or not bool(active.any()) or next_mask is None:
            break
        update_out, update_mask = out[n_act:][~hit], next_mask[~hit]
    chosen = logits[stopped] if bool(stopped.any()) else logits
    return ReagentRun(scores=chosen.softmax(-1).mean(0), steps=steps, stopped=stopped)


def topk_candidates(
    adapter: ModelAdapter, prefix: Int[Tensor, " ctx"], *, k: int
) -> Int[Tensor, "ctx k"]:
    """Row i: the model's ``k`` most probable next tokens given ``prefix[:i]``, ``prefix[i]``
    excluded (ties broken by ``torch.topk``); row 0: ``prefix[0]`` repeated (no prefix).
    On ``prefix``'s device.

    Raises:
        ValueError: ``k >= d_vocab`` (no k tokens other than the original exist).
    """
    if k >= adapter.d_vocab:
        raise ValueError(f"top_k_replacements={k} must be < d_vocab={adapter.d_vocab}")
    rows = [prefix[:1].expand(k)]
    with torch.no_grad():
        for i in range(1, prefix.numel()):
            top = adapter.last_log_probs(prefix[None, :i])[0].topk(k + 1).indices
            # the k best other than prefix[i], in rank order (a stable sort puts it last)
            drop = (top == prefix[i]).to(torch.int8)
            rows.append(top[drop.argsort(stable=True)[:k]])
    return torch.stack(rows)


def reagent_run(adapter: ModelAdapter, req: Prepared, *, config: ReagentConfig) -> ReagentRun:
    """The ReAGent loop on a validated request (inside the state guard)."""

    def next_log_probs(batch: Tensor) -> Tensor:
        with torch.no_grad():
            parts = [adapter.last_log_probs(rows) for rows in batch.split(config.batch_size)]
        return torch.cat(parts)

    candidates = None
    if config.replacement == "model_topk":
        candidates = topk_candidates(adapter, req.prefix, k=config.top_k_replacements)
    return reagent_core(
        req.prefix,
        req.target_id,
        next_log_probs,
        candidates=candidates,
        d_vocab=adapter.d_vocab,
        config=config,
    )


@typechecked
def reagent(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: TargetLike = None,
    config: ReagentConfig | None = None,
) -> AttributionResult:
    """ReAGent token importance (Zhao & Shan 2024) with the replacement of the module docstring.

    Args:
        model: A ``HookedTransformer`` or ``TransformerBridge``.
        tokens: Token ids containing the target, or a string.
        target: Index of the explained token (default: last).
        config: :class:`ReagentConfig` (defaults when ``None``).

    Returns:
        An :class:`AttributionResult`; ``scores`` ``[ctx]`` are positive and sum to 1.
        ``diagnostics``: ``steps`` (update steps run), ``probes_stopped`` (probes that met
        the stopping condition) and ``n_probes``. With ``probes_stopped == 0`` no probe
        converged within ``max_steps`` and the scores average all probes' unconverged logits.

    Raises:
        ValueError: Bad tokens/target, or ``top_k_replacements >= d_vocab``.
    """
    cfg = ReagentConfig() if config is None else config
    runs: list[ReagentRun] = []

    def score(adapter: ModelAdapter, req: Prepared) -> Tensor:
        runs.append(reagent_run(adapter, req, config=cfg))
        return runs[-1].scores.to(device=adapter.device, dtype=adapter.dtype)

    result = run_baseline(model, tokens, target=target, method="reagent", score_fn=score)
    run = runs[-1]
    diagnostics = {
        "steps": run.steps,
        "probes_stopped": int(run.stopped.sum()),
        "n_probes": int(run.stopped.numel()),
    }
    return replace(result, diagnostics=diagnostics)


METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(
        name="reagent",
        fn=reagent,
        default_config=ReagentConfig(),
        description="ReAGent: random token replacement with top-n stopping (model's own top-k "
        "tokens as replacements)",
    ),
)
