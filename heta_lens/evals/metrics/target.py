"""Target-side faithfulness: the perturbation metrics read on log p(target) (row keys ``*_logp``).

Soft-NS/NC (Hellinger distance) and ``hard_topk_kl`` (KL) measure how far a perturbation moves
the WHOLE next-token distribution. When the explained token t = ``tokens[target]`` is not the
model's confident prediction (the curated set keeps targets in the model's top 10, median
p(t) 0.025), that movement is mostly the movement of other tokens, which a method explaining
the distribution (KL-based) is credited for and a method explaining log p(t) is not. The
target-side versions below read the log-probability of t alone, from the SAME masked copies
and the same forward as their full-distribution siblings (the target column of the
log-probabilities already computed): they cost nothing extra. With ℓ(x) = log p(t | x), in
nats, computed in float64 from the model's log-softmax:

Soft (the copies of :func:`~heta_lens.evals.metrics.soft.soft_rows`: unperturbed E, the zero
baseline, n_draws sufficiency copies E ⊙ M_S,k, n_draws comprehensiveness copies E ⊙ M_C,k):

- ℓ = ℓ(E), ℓ_0 = ℓ(zero baseline), ℓ_S,k = ℓ(E ⊙ M_S,k), ℓ_C,k = ℓ(E ⊙ M_C,k);
- Δ_0 = ℓ − ℓ_0, the log-probability of t that the empty input loses;
- ``soft_nc_logp`` = max(0, mean_k (ℓ − ℓ_C,k)) / Δ_0: the share of that loss that softly
  removing the attributed mass causes;
- ``soft_ns_logp`` = max(0, mean_k ℓ_S,k − ℓ_0) / Δ_0: the share of it that softly keeping
  only the attributed mass recovers.

This is ReAGent's normalisation (Soft-NC = D_C / D_0, Soft-NS = max(0, D_0 − D_S) / D_0 with
D_0 = 1 − S0) with the Hellinger distance D(p, q) replaced by the SIGNED log-probability drop
d(p) = ℓ − log p(t): on the target the question is whether the attributed tokens support t,
so a mask that raises p(t) explains no loss (it is not rewarded as a symmetric distance
would). The mean over draws is the mean of log-probabilities (E_mask[ℓ − ℓ_C]), and NC is
clamped at 0 as NS already is, so both are non-negative and the reported number is the
same log ratio of instance means against the random attribution
(:func:`~heta_lens.evals.metrics.ratio.log_ratio`). Unlike their Hellinger siblings neither is
capped at 1 (a mask can lower ℓ below ℓ_0, or keep ℓ_S above ℓ). When Δ_0 ≤ 0 (the empty
input does not lower p(t): there is no loss to share) both are NaN, dropped from the log
ratio and counted, as Soft-NS/NC are when 1 − S0 = 0.

``hard_topk_kl`` (the copies of :func:`~heta_lens.evals.metrics.hard.hard_rows`), over its
fractions f with T_f the top-k positions:

- ``hard_nc_logp`` = mean_f (ℓ − ℓ(without T_f)) (higher = better), the target's term of
  KL(q ‖ p_without): what removing the top tokens costs t;
- ``hard_ns_logp`` = mean_f (ℓ(only T_f) − ℓ) (closer to 0 from below, i.e. higher = better;
  positive when the top tokens alone predict t better than the whole context).

AOPC (the copies of :func:`~heta_lens.evals.metrics.curves.aopc_rows`, the same curves as
``aopc_deletion``/``aopc_insertion``, which read p(t)):

- ``aopc_deletion_logp`` = mean_j (ℓ_orig − ℓ_del,j);
- ``aopc_insertion_logp`` = mean_j (ℓ_ins,j − ℓ_empty).

On log p a step's value is the relative change of p(t), so an instance whose p(t) is 0.01
weighs as much as a confident one (on p its whole curve lies within 0.01). All four are
signed means in nats, reported with bootstrap intervals like the probability areas.
"""

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from heta_lens._typing import typechecked


def _values(target_log_p: Tensor) -> list[float]:
    return target_log_p.detach().to(torch.float64).cpu().tolist()


def _mean(values: tuple[float, ...]) -> float:
    return sum(values) / len(values)


@dataclass(frozen=True, kw_only=True)
class SoftLogp:
    """Soft-NS/NC on log p(target) of one attribution (module docstring).

    Attributes:
        log_p: ℓ, the explained token's log-probability with nothing masked.
        log_p_zero: ℓ_0, with every (unprotected) embedding zeroed.
        log_p_s_draws: ℓ_S,k of each sufficiency draw.
        log_p_c_draws: ℓ_C,k of each comprehensiveness draw.
        soft_ns: max(0, mean_k ℓ_S,k − ℓ_0) / (ℓ − ℓ_0); NaN when ℓ − ℓ_0 ≤ 0.
        soft_nc: max(0, mean_k (ℓ − ℓ_C,k)) / (ℓ − ℓ_0); NaN when ℓ − ℓ_0 ≤ 0.
    """

    log_p: float
    log_p_zero: float
    log_p_s_draws: tuple[float, ...]
    log_p_c_draws: tuple[float, ...]
    soft_ns: float
    soft_nc: float

    def __post_init__(self) -> None:
        if not self.log_p_s_draws or len(self.log_p_s_draws) != len(self.log_p_c_draws):
            raise ValueError("log_p_s_draws and log_p_c_draws need one value per draw (>= 1)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@typechecked
def soft_logp(target_log_p: Float[Tensor, " row"], *, n_draws: int) -> SoftLogp:
    """:class:`SoftLogp` from the explained token's log-probability in each
    :func:`~heta_lens.evals.metrics.soft.soft_rows` copy (q, p_0, n_draws × p_S, n_draws × p_C).

    Raises:
        ValueError: ``target_log_p`` does not hold 2 + 2·n_draws values.

    Examples:
        >>> got = soft_logp(torch.tensor([-1.0, -3.0, -2.0, -1.5]), n_draws=1)
        >>> got.soft_ns, got.soft_nc  # (−2 − (−3)) / 2 and (−1 − (−1.5)) / 2
        (0.5, 0.25)
    """
    values = _values(target_log_p)
    if n_draws < 1 or len(values) != 2 + 2 * n_draws:
        raise ValueError(
            f"expected 2 + 2·n_draws = {2 + 2 * n_draws} soft copies; got {len(values)}"
        )
    log_p, log_p_zero = values[0], values[1]
    s_draws = tuple(values[2 : 2 + n_draws])
    c_draws = tuple(values[2 + n_draws :])
    loss = log_p - log_p_zero
    defined = loss > 0.0
    return SoftLogp(
        log_p=log_p,
        log_p_zero=log_p_zero,
        log_p_s_draws=s_draws,
        log_p_c_draws=c_draws,
        soft_ns=max(0.0, _mean(s_draws) - log_p_zero) / loss if defined else math.nan,
        soft_nc=max(0.0, log_p - _mean(c_draws)) / loss if defined else math.nan,
    )


@dataclass(frozen=True, kw_only=True)
class HardLogp:
    """``hard_topk_kl``'s copies read on log p(target) (module docstring).

    Attributes:
        nc: mean_f (ℓ − ℓ(without T_f)).
        ns: mean_f (ℓ(only T_f) − ℓ).
        nc_per_fraction: ℓ − ℓ(without T_f) per fraction.
        ns_per_fraction: ℓ(only T_f) − ℓ per fraction.
    """

    nc: float
    ns: float
    nc_per_fraction: tuple[float, ...]
    ns_per_fraction: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.nc_per_fraction or len(self.nc_per_fraction) != len(self.ns_per_fraction):
            raise ValueError("nc_per_fraction and ns_per_fraction need one value per fraction")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@typechecked
def hard_logp(target_log_p: Float[Tensor, " row"], *, n_fractions: int) -> HardLogp:
    """:class:`HardLogp` from the explained token's log-probability in each
    :func:`~heta_lens.evals.metrics.hard.hard_rows` copy (unmasked, n × without, n × only).

    Raises:
        ValueError: ``target_log_p`` does not hold 1 + 2·n_fractions values.
    """
    values = _values(target_log_p)
    if n_fractions < 1 or len(values) != 1 + 2 * n_fractions:
        raise ValueError(
            f"expected 1 + 2·n_fractions = {1 + 2 * n_fractions} hard copies; got {len(values)}"
        )
    log_p = values[0]
    nc = tuple(log_p - v for v in values[1 : 1 + n_fractions])
    ns = tuple(v - log_p for v in values[1 + n_fractions :])
    return HardLogp(nc=_mean(nc), ns=_mean(ns), nc_per_fraction=nc, ns_per_fraction=ns)


@dataclass(frozen=True, kw_only=True)
class AopcLogp:
    """The AOPC curves on log p(target) (module docstring).

    Attributes:
        log_p_deletion: ℓ with the top-k tokens masked, per step.
        log_p_insertion: ℓ with only the top-k tokens unmasked, per step.
        log_p_orig: ℓ with nothing masked.
        log_p_empty: ℓ with every (unprotected) context token masked.
    """

    log_p_deletion: tuple[float, ...]
    log_p_insertion: tuple[float, ...]
    log_p_orig: float
    log_p_empty: float

    def __post_init__(self) -> None:
        if not self.log_p_deletion or len(self.log_p_deletion) != len(self.log_p_insertion):
            raise ValueError("log_p_deletion and log_p_insertion need one value per step")

    @property
    def deletion_aopc(self) -> float:
        """mean_j (ℓ_orig − ℓ_del,j)."""
        return _mean(tuple(self.log_p_orig - v for v in self.log_p_deletion))

    @property
    def insertion_aopc(self) -> float:
        """mean_j (ℓ_ins,j − ℓ_empty)."""
        return _mean(tuple(v - self.log_p_empty for v in self.log_p_insertion))

    def to_dict(self) -> dict[str, Any]:
        """Fields plus the two areas, JSON-ready."""
        return {
            **asdict(self),
            "deletion_aopc": self.deletion_aopc,
            "insertion_aopc": self.insertion_aopc,
        }


@typechecked
def aopc_logp(target_log_p: Float[Tensor, " row"], *, n_steps: int) -> AopcLogp:
    """:class:`AopcLogp` from the explained token's log-probability in each
    :func:`~heta_lens.evals.metrics.curves.aopc_rows` copy (unmasked, all masked, n × top-k
    masked, n × all but the top-k masked).

    Raises:
        ValueError: ``target_log_p`` does not hold 2 + 2·n_steps values.
    """
    values = _values(target_log_p)
    if n_steps < 1 or len(values) != 2 + 2 * n_steps:
        raise ValueError(
            f"expected 2 + 2·n_steps = {2 + 2 * n_steps} AOPC copies; got {len(values)}"
        )
    return AopcLogp(
        log_p_deletion=tuple(values[2 : 2 + n_steps]),
        log_p_insertion=tuple(values[2 + n_steps :]),
        log_p_orig=values[0],
        log_p_empty=values[1],
    )
