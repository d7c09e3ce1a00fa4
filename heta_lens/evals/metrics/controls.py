"""Concentration controls: the same transform of every method's scores before Soft-NS/NC.

ReAGent's Soft-NS/NC reward concentrated attributions: the keep probability of token i is
its mass a_i, so a method whose mass sits on few tokens scores high whatever its ranking
(docs/evaluation.md, "One protocol for every method"). Each control maps a score vector to a
distribution a over the context that keeps (part of) the method's ranking and removes (part
of) its concentration; Soft-NS/NC are then computed on a exactly as on a method's own scores
(:func:`heta_lens.evals.metrics.soft.soft_scores`; a is its own normalisation), and the random
baseline goes through the same control before the log ratio is taken.

- ``rank`` (:func:`rank_normalize`): a_i = r_i / Σ_j r_j, r the average ranks 1..n of the
  raw scores (ascending; ties share their mean rank). Every method gets the same linear mass
  profile; only its order differs.
- ``matched`` (:func:`matched_concentration`): a ∝ â^β (â the recipe's normalised scores),
  β ≥ 0 solved so that Σ a² equals a common target 1 / (fraction · n) for every method of the
  instance (n the unprotected positions): the same effective number of tokens 1/Σa² for all.
- ``perm`` (:func:`permuted_profile`): the method's own sorted mass â on a uniformly random
  order of the positions. It keeps the concentration and destroys the ranking: what
  concentration alone buys.

Protected positions (``protected=1``, the BOS/sink of the ``standard`` protocol) get 0 under
every control and are excluded from every rank, normalisation and permutation.
"""

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from scipy import optimize, stats
from torch import Tensor, nn

from heta_lens._typing import TokensLike, typechecked
from heta_lens.evals.metrics._common import (
    check_protected,
    check_scores,
    distinct_log_probs,
    validated,
)
from heta_lens.evals.metrics.soft import (
    SoftScores,
    check_n_draws,
    normalize_free,
    soft_from_log_probs,
    soft_rows,
)
from heta_lens.hooks import preserved_model_state

CONTROLS: tuple[str, ...] = ("rank", "matched", "perm")
"""Registered control names (metric keys ``soft_ns@<control>``, ``soft_nc@<control>`` and
their target-side ``soft_ns_logp@<control>``, ``soft_nc_logp@<control>``)."""

DEFAULT_MATCHED_FRACTION = 0.1
"""Default target of ``matched``: Σ a² = 1 / (0.1 · n), an effective 10 % of the tokens."""

BRENTQ_XTOL = 1e-12
"""Absolute tolerance on β of the ``matched`` solver (:func:`scipy.optimize.brentq`)."""


def _free(scores: Tensor, protected: int) -> Tensor:
    check_scores(scores, int(scores.numel()))
    check_protected(protected, int(scores.numel()))
    return scores.detach().to(torch.float64)


def _place(values: Tensor, ctx: int, protected: int) -> Tensor:
    out = torch.zeros(ctx, dtype=torch.float64, device=values.device)
    out[protected:] = values
    return out


@typechecked
def rank_normalize(scores: Float[Tensor, " ctx"], *, protected: int = 0) -> Float[Tensor, " ctx"]:
    """a_i = r_i / Σ_j r_j over positions ≥ ``protected`` (0 at protected positions).

    r = ``scipy.stats.rankdata(scores[protected:], method="average")``: ranks 1..n ascending
    by raw score (negative scores are ranked, not clamped), tied scores share their mean rank,
    so Σ r = n(n + 1)/2 and the lowest score keeps mass > 0. Constant scores give the uniform
    distribution. Float64 out.

    Raises:
        ValueError: Non-finite scores, or no unprotected position.

    Examples:
        >>> rank_normalize(torch.tensor([5.0, 0.3, -1.0, 0.3]), protected=1)
        tensor([0.0000, 0.4167, 0.1667, 0.4167], dtype=torch.float64)
    """
    free = _free(scores, protected)[protected:]
    ranks = stats.rankdata(free.cpu().numpy(), method="average")
    r = torch.as_tensor(ranks, dtype=torch.float64, device=free.device)
    return _place(r / r.sum(), int(scores.numel()), protected)


def concentration(a: Tensor) -> float:
    """Σ_i a_i² of a distribution (1/Σa² is its effective number of tokens)."""
    return float(a.to(torch.float64).square().sum())


def _tempered(log_a: Tensor, beta: float) -> Tensor:
    return (beta * log_a).softmax(-1) if beta > 0 else torch.full_like(log_a, 1 / log_a.numel())


def _log_concentration(log_a: np.ndarray, beta: float) -> float:
    """log Σ a(β)² for a(β) ∝ exp(β log a), by log-sum-exp (stable for large β)."""
    x = beta * log_a
    top = x.max()
    s1 = np.log(np.exp(x - top).sum()) + top
    s2 = np.log(np.exp(2 * (x - top)).sum()) + 2 * top
    return float(s2 - 2 * s1)


@typechecked
def temper(a: Float[Tensor, " n"], *, target: float) -> tuple[Float[Tensor, " n"], float]:
    """a(β) ∝ a^β with Σ a(β)² = ``target``: the tempered distribution and β.

    Only the support P = {i: a_i > 0} carries mass (0^β = 0). Σ a(β)² increases strictly with
    β from 1/|P| (β = 0: uniform on P) to 1/|A| (β → ∞: uniform on A, the positions of the
    largest a), unless a is uniform on P (then it is constant). A target outside
    (1/|P|, 1/|A|) is unreachable; the nearest end is returned (β = 0, or β = inf with the
    uniform distribution on A). Otherwise β is the root of log Σ a(β)² − log target on
    [0, β_hi] (β_hi doubled from 1 until the sign changes) by ``scipy.optimize.brentq`` with
    ``xtol`` :data:`BRENTQ_XTOL` and ``rtol`` 1e-12, in float64.

    Raises:
        ValueError: ``a`` not a distribution (negative or non-finite entries, or all 0), or
            ``target`` outside (0, 1].

    Examples:
        >>> b, beta = temper(torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64), target=1/3)
        >>> beta, b.tolist()
        (0.0, [0.3333333333333333, 0.3333333333333333, 0.3333333333333333])
    """
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target Σa² must lie in (0, 1]; got {target}")
    p = a.detach().to(torch.float64)
    if not bool(torch.isfinite(p).all()) or bool((p < 0).any()) or float(p.sum()) <= 0:
        raise ValueError("a must be non-negative, finite and not all 0")
    support = p > 0
    out = torch.zeros_like(p)
    top = p == p.max()
    if target <= 1.0 / int(support.sum()):
        out[support] = 1.0 / int(support.sum())
        return out, 0.0
    if target >= 1.0 / int(top.sum()):
        out[top] = 1.0 / int(top.sum())
        return out, math.inf
    log_a = p[support].log()
    log_np = log_a.cpu().numpy()
    goal = math.log(target)

    def gap(beta: float) -> float:
        return _log_concentration(log_np, beta) - goal

    hi = 1.0
    while gap(hi) <= 0.0:
        hi *= 2.0
    # brentq raises RuntimeError if it does not converge (disp=True); its stubs type the
    # return as a union with the full-output tuple, hence Any.
    root: Any = optimize.brentq(gap, 0.0, hi, xtol=BRENTQ_XTOL, rtol=np.float64(1e-12), maxiter=500)
    beta = float(root)
    out[support] = _tempered(log_a, beta)
    return out, beta


@typechecked
def matched_concentration(
    scores: Float[Tensor, " ctx"],
    *,
    protected: int = 0,
    fraction: float = DEFAULT_MATCHED_FRACTION,
) -> Float[Tensor, " ctx"]:
    """The recipe's distribution â (:func:`normalize_free`) tempered to Σa² = 1/(fraction · n).

    n = ctx − ``protected``; :func:`temper` solves for β (its docstring: solver, tolerance,
    unreachable targets, zeros). Two methods whose distributions lie in one power family
    (b ∝ â^γ, γ > 0: the same ranking) give the same tempered distribution, so the same
    Soft-NS/NC. Float64 out, 0 at protected positions.

    Raises:
        ValueError: Non-finite scores, no unprotected position, or ``fraction`` outside (0, 1].
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1]; got {fraction}")
    n = check_protected(protected, int(scores.numel()))
    a = normalize_free(_free(scores, protected), protected=protected)[protected:]
    tempered, _ = temper(a, target=min(1.0, 1.0 / (fraction * n)))
    return _place(tempered, int(scores.numel()), protected)


@typechecked
def permuted_profile(
    scores: Float[Tensor, " ctx"], *, generator: torch.Generator, protected: int = 0
) -> Float[Tensor, " ctx"]:
    """The recipe's distribution â (:func:`normalize_free`) on a random order of the positions.

    Positions ≥ ``protected`` get ``â[protected:][perm]`` with ``perm = torch.randperm(n,
    generator=generator, device=generator.device)`` (n = ctx − protected): the same multiset
    of masses (the method's sorted profile) at uniformly random places. Float64 out.

    Raises:
        ValueError: Non-finite scores, or no unprotected position.
    """
    n = check_protected(protected, int(scores.numel()))
    a = normalize_free(_free(scores, protected), protected=protected)[protected:]
    perm = torch.randperm(n, generator=generator, device=generator.device).to(a.device)
    return _place(a[perm], int(scores.numel()), protected)


def apply_control(
    name: str,
    scores: Float[Tensor, " ctx"],
    *,
    protected: int = 0,
    generator: torch.Generator | None = None,
    fraction: float = DEFAULT_MATCHED_FRACTION,
) -> Float[Tensor, " ctx"]:
    """The distribution of control ``name`` (:data:`CONTROLS`) for ``scores``.

    Raises:
        ValueError: Unknown control, ``perm`` without a generator, or bad scores.
    """
    if name == "rank":
        return rank_normalize(scores, protected=protected)
    if name == "matched":
        return matched_concentration(scores, protected=protected, fraction=fraction)
    if name == "perm":
        if generator is None:
            raise ValueError("the perm control needs a generator for its permutation")
        return permuted_profile(scores, generator=generator, protected=protected)
    raise ValueError(f"unknown control {name!r}; valid: {', '.join(CONTROLS)}")


def check_controls(names: Sequence[str]) -> tuple[str, ...]:
    """Validate control names (no duplicates, each in :data:`CONTROLS`)."""
    out = tuple(names)
    unknown = [n for n in out if n not in CONTROLS]
    if unknown:
        raise ValueError(f"unknown control(s) {unknown}; valid: {', '.join(CONTROLS)}")
    if len(set(out)) != len(out):
        raise ValueError(f"duplicate control in {list(out)}")
    return out


@typechecked
def controlled_soft_scores(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: int,
    scores: Float[Tensor, " ctx"],
    controls: Sequence[str],
    n_draws: int,
    mask_seed: int,
    generator: torch.Generator,
    protected: int = 0,
    fraction: float = DEFAULT_MATCHED_FRACTION,
) -> dict[str, SoftScores]:
    """Soft-NS/NC of ``scores`` under each control, every copy in one batched forward.

    Control c's distribution is :func:`apply_control` (``perm`` draws its permutation from
    ``generator``, controls in the order given); its masks are drawn by
    :func:`~heta_lens.evals.metrics.soft.soft_rows` from ``torch.Generator().manual_seed(
    mask_seed)``, the same draws for every control (common random numbers: with the seed of
    the recipe's own Soft row, the control's numbers differ from the recipe's only through
    the distribution). Each result equals ``soft_scores(model, tokens, target=target,
    scores=apply_control(c, ...), n_draws=n_draws, generator=<that generator>,
    protected=protected)`` to the round-off of the batch, its target-side version
    (``SoftScores.logp``, :mod:`heta_lens.evals.metrics.target`) included.

    Raises:
        ValueError: Unknown or repeated controls, bad tokens/target/scores, ``n_draws < 1``,
            or no unprotected position.
    """
    names = check_controls(controls)
    check_n_draws(n_draws)
    adapter, req, raw = validated(model, tokens, target=target, scores=scores)
    dists = [
        apply_control(c, raw, protected=protected, generator=generator, fraction=fraction)
        for c in names
    ]
    if not dists:
        return {}
    with preserved_model_state(model), torch.no_grad():
        x = adapter.embed(req.prefix[None])[0]
        parts = [
            soft_rows(
                x,
                a.to(x.device),
                n_draws=n_draws,
                generator=torch.Generator().manual_seed(mask_seed),
                protected=protected,
            )
            for a in dists
        ]
        log_p, _ = distinct_log_probs(adapter, req, torch.cat(parts))
    chunks = log_p.split([p.shape[0] for p in parts])
    pairs = zip(names, chunks, strict=True)
    return {c: soft_from_log_probs(lp, n_draws=n_draws, target_id=req.target_id) for c, lp in pairs}
