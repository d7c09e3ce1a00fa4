"""Soft-NC / Soft-NS: ReAGent's soft-masking faithfulness metrics (Zhao & Shan, 2024).

Recipe (docs/evaluation.md, "Soft-NC / Soft-NS"), for a context x_1..x_n (BOS included when the
model uses one) with input embeddings E ∈ R^{n×d} (the input-embedding table only; positional
embeddings, where the model has them, are added later and never masked):

- a = :func:`normalize_attribution` (scores): negatives clamped to 0, divided by the sum.
- q = softmax of the model's logits after the prefix (full next-token distribution), from
  the unperturbed embeddings.
- D(p, q) = Σ_v (√p_v − √q_v)² / √2 (:func:`hellinger_distance`; ReAGent's form, no outer
  root, range [0, √2]).
- Soft masks M ∈ {0,1}^{n×d}, element (i, j) kept with probability π_i independently; the
  model sees E ⊙ M (no rescaling). Sufficiency π = a gives p_S, comprehensiveness π = 1 − a
  gives p_C; all embeddings zero gives p_0.
- SoftS = 1 − D(p_S, q), SoftC = D(p_C, q), S0 = 1 − D(p_0, q);
  Soft-NS = max(0, SoftS − S0) / (1 − S0), Soft-NC = SoftC / (1 − S0).
- Random baseline: a = softmax(u), u ~ U(0, 1)^n (:func:`random_attribution`), scored the
  same way with fresh masks; the reported number is the log ratio of the instance means
  (:func:`heta_lens.evals.metrics.ratio.log_ratio`).
"""

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn

from heta_lens._typing import TokensLike, typechecked
from heta_lens.evals.metrics._common import check_protected, distinct_log_probs, validated
from heta_lens.evals.metrics.target import SoftLogp, soft_logp
from heta_lens.hooks import preserved_model_state

"""Per-instance metric values: a 1-D tensor, array or sequence of floats."""

DEFAULT_N_DRAWS = 4


@typechecked
def normalize_attribution(scores: Float[Tensor, " ctx"]) -> Float[Tensor, " ctx"]:
    """a_i = max(s_i, 0) / Σ_j max(s_j, 0): importance as a distribution over context tokens.

    Negative scores (evidence *against* the target) are clamped to 0 before normalising, as the
    recipe prescribes for every method. When no score is positive (all ≤ 0) there is no mass to
    distribute and the uniform distribution a_i = 1/n is returned (the attribution then ranks
    no token above another). Computed in the input's dtype.

    Raises:
        ValueError: Empty or non-finite scores.

    Examples:
        >>> normalize_attribution(torch.tensor([2.0, -1.0, 6.0]))
        tensor([0.2500, 0.0000, 0.7500])
    """
    if scores.numel() == 0:
        raise ValueError("scores are empty")
    if not bool(torch.isfinite(scores).all()):
        raise ValueError("scores contain NaN or infinite values")
    clamped = scores.clamp_min(0.0)
    total = clamped.sum()
    if float(total) == 0.0:
        return torch.full_like(scores, 1.0 / scores.numel())
    return clamped / total


@typechecked
def normalize_free(scores: Float[Tensor, " ctx"], *, protected: int = 0) -> Float[Tensor, " ctx"]:
    """:func:`normalize_attribution` over positions ``>= protected``; 0 at the protected ones.

    ``protected=0`` is :func:`normalize_attribution` itself (the ``legacy`` protocol);
    ``protected=1`` takes the BOS/sink position out of the distribution (``standard``).

    Raises:
        ValueError: Non-finite scores, or no position ``>= protected``.

    Examples:
        >>> normalize_free(torch.tensor([9.0, 1.0, 3.0]), protected=1)
        tensor([0.0000, 0.2500, 0.7500])
    """
    if protected == 0:
        return normalize_attribution(scores)
    check_protected(protected, int(scores.numel()))
    out = torch.zeros_like(scores)
    out[protected:] = normalize_attribution(scores[protected:])
    return out


@typechecked
def hellinger_distance(
    p: Float[Tensor, "*batch d_vocab"], q: Float[Tensor, "*batch d_vocab"]
) -> Float[Tensor, "*batch"]:
    """D(p, q) = Σ_v (√p_v − √q_v)² / √2 over the last axis.

    ReAGent's form of the Hellinger distance: no outer square root, so D lies in [0, √2]
    (0 for p = q, √2 for disjoint supports); it equals √2 · H²(p, q) for the textbook H.

    Examples:
        >>> hellinger_distance(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))
        tensor(1.4142)
    """
    return (p.sqrt() - q.sqrt()).square().sum(-1) / math.sqrt(2.0)


@typechecked
def random_attribution(
    n: int, *, generator: torch.Generator, dtype: torch.dtype = torch.float64
) -> Float[Tensor, " n"]:
    """ReAGent's random baseline a = softmax(u), u ~ U(0, 1)^n, drawn from ``generator``.

    The draw is ``torch.rand(n, generator=generator, dtype=dtype, device=generator.device)``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1; got {n}")
    u = torch.rand(n, generator=generator, dtype=dtype, device=generator.device)
    return u.softmax(-1)


@dataclass(frozen=True, kw_only=True)
class SoftScores:
    """Soft sufficiency / comprehensiveness of one attribution for one target.

    Attributes:
        soft_s: SoftS = mean over draws of 1 − D(p_S, q).
        soft_c: SoftC = mean over draws of D(p_C, q).
        s0: S0 = 1 − D(p_0, q) (deterministic).
        soft_ns: max(0, soft_s − s0) / (1 − s0); NaN when 1 − s0 == 0.
        soft_nc: soft_c / (1 − s0); NaN when 1 − s0 == 0.
        n_draws: Mask draws averaged.
        soft_s_draws: SoftS of each draw.
        soft_c_draws: SoftC of each draw.
        logp: The same copies read on log p(target) (:mod:`heta_lens.evals.metrics.target`);
            ``None`` when built without the target's id.
    """

    soft_s: float
    soft_c: float
    s0: float
    soft_ns: float
    soft_nc: float
    n_draws: int
    soft_s_draws: tuple[float, ...]
    soft_c_draws: tuple[float, ...]
    logp: SoftLogp | None = None

    def __post_init__(self) -> None:
        if self.n_draws < 1:
            raise ValueError(f"n_draws must be >= 1; got {self.n_draws}")
        if len(self.soft_s_draws) != self.n_draws or len(self.soft_c_draws) != self.n_draws:
            raise ValueError("soft_s_draws and soft_c_draws need one value per draw")

    @property
    def soft_ns_draws(self) -> tuple[float, ...]:
        """Soft-NS of each single draw (ReAGent's one-draw number, draw by draw)."""
        return tuple(_normalised_sufficiency(s, self.s0) for s in self.soft_s_draws)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _normalised_sufficiency(soft_s: float, s0: float) -> float:
    denom = 1.0 - s0
    return math.nan if denom == 0.0 else max(0.0, soft_s - s0) / denom


@typechecked
def soft_scores(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: int,
    scores: Float[Tensor, " ctx"],
    n_draws: int = DEFAULT_N_DRAWS,
    generator: torch.Generator,
    protected: int = 0,
) -> SoftScores:
    """Soft-NS and Soft-NC of ``scores`` for ``tokens[target]`` (ReAGent's recipe, module doc).

    Mask draws: ``u = torch.rand((n_draws, 2, ctx, d_model), generator=generator,
    dtype=torch.float64, device=generator.device)``; draw k keeps element (i, j) for
    sufficiency when ``u[k, 0, i, j] < a_i`` and for comprehensiveness when
    ``u[k, 1, i, j] < 1 − a_i`` (each a Bernoulli(π_i) draw; π = 1 keeps always, π = 0 never).
    q (unperturbed), p_0 (all zero) and the 2·n_draws masked copies run as one batched forward
    (:func:`soft_rows`, :func:`soft_from_log_probs`; a copy equal to an earlier one runs once).
    The same copies read on log p(target) give ``SoftScores.logp``
    (:func:`~heta_lens.evals.metrics.target.soft_logp`).

    Several draws: SoftS and SoftC are averaged over the draws (the mean of the per-draw SoftS
    and SoftC), then normalised as above, so ``n_draws=1`` is exactly ReAGent's single-draw
    number and more draws estimate the same quantities with less mask noise. The default 4
    halves the mask-noise standard deviation of a single draw at the cost of 8 masked rows in
    the same forward. (Because of the max(0, ·), the mean of per-draw Soft-NS can differ; it
    is available as ``SoftScores.soft_ns_draws``.)

    Degenerate instances: when the all-zero input already gives q exactly (D(p_0, q) = 0, so
    1 − S0 = 0) both normalised metrics are undefined and returned as NaN rather than raising,
    so one such instance does not abort a dataset run; the log ratio
    (:func:`~heta_lens.evals.metrics.ratio.log_ratio`) and the bootstrap in
    :mod:`heta_lens.evals.metrics.stats` drop NaNs and count them.

    Random baseline: ``soft_scores(model, tokens, target=t, scores=random_attribution(t,
    generator=g), generator=g)`` (fresh masks come from the advanced generator).

    Protected positions (``protected=1``, the ``standard`` protocol's BOS/sink,
    :mod:`heta_lens.evals.protocol`): a = :func:`normalize_free` (0 at position 0, the rest
    normalised over positions ≥ 1) and position 0 is kept in every copy (π_0 = 1 for
    sufficiency and comprehensiveness, and p_0 zeroes positions ≥ 1 only). The mask draws
    ``u`` are the same tensor as with ``protected=0``; only their use at position 0 differs.

    Args:
        model: A ``HookedTransformer`` or ``TransformerBridge``.
        tokens: Token ids (or a string) containing the target.
        target: Index of the explained token; the context is ``tokens[:target]``.
        scores: One attribution score per context token, ``[ctx]`` (normalised internally with
            :func:`normalize_attribution`).
        n_draws: Independent mask draws (≥ 1).
        generator: Source of all mask randomness.
        protected: Leading positions never masked nor normalised over (0 or 1).

    Returns:
        :class:`SoftScores`.

    Raises:
        ValueError: Bad tokens/target/scores, ``n_draws < 1``, or no unprotected position.

    Examples:
        >>> from heta_lens.testing import tiny_bridge
        >>> scores = torch.tensor([0.1, 0.5, 0.2, 0.2], dtype=torch.float64)
        >>> gen = torch.Generator().manual_seed(0)
        >>> res = soft_scores(tiny_bridge(), torch.tensor([1, 5, 7, 3, 9]), target=4,
        ...                   scores=scores, generator=gen)
        >>> res.n_draws, 0.0 <= res.soft_ns <= 1.0, res.soft_nc >= 0.0
        (4, True, True)
    """
    check_n_draws(n_draws)
    adapter, req, raw = validated(model, tokens, target=target, scores=scores)
    with preserved_model_state(model), torch.no_grad():
        x = adapter.embed(req.prefix[None])[0]
        rows = soft_rows(x, raw, n_draws=n_draws, generator=generator, protected=protected)
        log_probs, _ = distinct_log_probs(adapter, req, rows)
    return soft_from_log_probs(log_probs, n_draws=n_draws, target_id=req.target_id)


def check_n_draws(n_draws: int) -> None:
    """Raise ``ValueError`` unless ``n_draws >= 1``."""
    if n_draws < 1:
        raise ValueError(f"n_draws must be >= 1; got {n_draws}")


def soft_rows(
    x: Float[Tensor, "ctx d_model"],
    scores: Float[Tensor, " ctx"],
    *,
    n_draws: int,
    generator: torch.Generator,
    protected: int = 0,
) -> Float[Tensor, "row ctx d_model"]:
    """The embedding copies of :func:`soft_scores`: q, p_0, n_draws × p_S, n_draws × p_C.

    ``scores`` are raw (normalised here with :func:`normalize_free` in float64); the mask
    draws are the ``u`` of :func:`soft_scores`'s docstring. The first ``protected`` rows of
    ``x`` are kept in every copy.
    """
    a = normalize_free(scores.to(torch.float64), protected=protected)
    ctx, d_model = x.shape
    u = torch.rand(
        (n_draws, 2, ctx, d_model),
        generator=generator,
        dtype=torch.float64,
        device=generator.device,
    ).to(x.device)
    keep_s = (u[:, 0] < a[:, None]).to(x.dtype)
    keep_c = (u[:, 1] < (1.0 - a)[:, None]).to(x.dtype)
    zero = torch.zeros_like(x)
    if protected:
        keep_s[:, :protected] = 1.0
        keep_c[:, :protected] = 1.0
        zero[:protected] = x[:protected]
    return torch.cat([x[None], zero[None], x * keep_s, x * keep_c])


def soft_from_log_probs(
    log_probs: Float[Tensor, "row d_vocab"], *, n_draws: int, target_id: int | None = None
) -> SoftScores:
    """:class:`SoftScores` from the log-probabilities of the :func:`soft_rows` copies; with
    ``target_id``, also their target column read on log p(target) (``SoftScores.logp``)."""
    probs = log_probs.to(torch.float64).exp()
    dist = hellinger_distance(probs[1:], probs[0].expand(probs.shape[0] - 1, -1)).tolist()
    s0 = 1.0 - dist[0]
    soft_s_draws = tuple(1.0 - d for d in dist[1 : 1 + n_draws])
    soft_c_draws = tuple(dist[1 + n_draws :])
    soft_s = sum(soft_s_draws) / n_draws
    soft_c = sum(soft_c_draws) / n_draws
    denom = 1.0 - s0
    return SoftScores(
        soft_s=soft_s,
        soft_c=soft_c,
        s0=s0,
        soft_ns=_normalised_sufficiency(soft_s, s0),
        soft_nc=math.nan if denom == 0.0 else soft_c / denom,
        n_draws=n_draws,
        soft_s_draws=soft_s_draws,
        soft_c_draws=soft_c_draws,
        logp=None if target_id is None else soft_logp(log_probs[:, target_id], n_draws=n_draws),
    )
