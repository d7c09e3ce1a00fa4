"""``hard_topk_kl``: hard top-k masking with KL, as the official HETA code evaluates.

This is the alternative to ReAGent's Soft-NC/Soft-NS (docs/evaluation.md) and is deliberately
named differently: it masks whole tokens (not embedding elements), ranks by the raw scores
(not a normalised distribution), measures KL (not the Hellinger form) and is not normalised by
a zero baseline. Its numbers are NOT comparable to ReAGent's Soft-NC/Soft-NS or their log
ratios.
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn

from heta_lens._typing import TokensLike, typechecked
from heta_lens.evals.metrics._common import (
    check_fractions,
    check_protected,
    count_for_fraction,
    distinct_log_probs,
    free_mask,
    replaced,
    top_k_masks,
    validated,
)
from heta_lens.evals.metrics.target import HardLogp, hard_logp
from heta_lens.hooks import preserved_model_state
from heta_lens.masking import kl_divergence, mask_rows


@dataclass(frozen=True, kw_only=True)
class HardTopK:
    """``hard_topk_kl`` of one attribution for one target.

    Attributes:
        nc: Mean over fractions of KL(q ‖ p with the top-k tokens masked) (higher = better).
        ns: Mean over fractions of −KL(q ‖ p with only the top-k tokens kept) (closer to 0 =
            better; always ≤ 0).
        fractions: The fractions of the context used.
        k: Tokens masked (NC) / kept (NS) at each fraction.
        nc_per_fraction: The KL after masking the top-k, per fraction.
        ns_per_fraction: −KL after keeping only the top-k, per fraction.
        mask: Mask scheme used (see :func:`heta_lens.masking.mask_rows`).
        logp: The same copies read on log p(target) (:mod:`heta_lens.evals.metrics.target`);
            ``None`` when built without the target's id.
    """

    nc: float
    ns: float
    fractions: tuple[float, ...]
    k: tuple[int, ...]
    nc_per_fraction: tuple[float, ...]
    ns_per_fraction: tuple[float, ...]
    mask: str
    logp: HardLogp | None = None

    def __post_init__(self) -> None:
        n = len(self.fractions)
        if n == 0:
            raise ValueError("fractions must not be empty")
        if not len(self.k) == len(self.nc_per_fraction) == len(self.ns_per_fraction) == n:
            raise ValueError("k, nc_per_fraction and ns_per_fraction need one entry per fraction")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@typechecked
def hard_topk_kl(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: int,
    scores: Float[Tensor, " ctx"],
    fractions: Sequence[float] = (0.1, 0.2, 0.3),
    mask: str = "zero",
    protected: int = 0,
) -> HardTopK:
    """``hard_topk_kl``: KL after hard-masking the top-scoring tokens (official HETA code).

    With q the unmasked next-token distribution after ``tokens[:target]`` and, for each
    fraction f, k = max(1, ceil(f · ctx)) (capped at ctx) and T_f the k highest-scoring
    positions (raw scores, ties broken by the earlier position):

        NC = mean_f KL(q ‖ p_{without T_f}),   NS = mean_f −KL(q ‖ p_{only T_f}),

    where "without T_f" replaces the input embeddings of T_f with the mask rows of
    :func:`heta_lens.masking.mask_rows` and "only T_f" replaces every other position's.
    KL(q ‖ p) = Σ_v q_v (log q_v − log p_v) in nats. All copies run in one batched forward
    (:func:`hard_rows`, :func:`hard_from_log_probs`); read on log p(target) they give
    ``HardTopK.logp`` (:func:`~heta_lens.evals.metrics.target.hard_logp`). With
    ``protected=1`` (the ``standard`` protocol) position 0 is never masked, neither ranked
    nor counted: T_f is the top k = max(1, ceil(f · (ctx − 1))) of positions ≥ 1 and
    "only T_f" keeps position 0 too.
    Not comparable to ReAGent's Soft-NC/Soft-NS (see the module docstring).

    Args:
        model: A ``HookedTransformer`` or ``TransformerBridge``.
        tokens: Token ids (or a string) containing the target.
        target: Index of the explained token; the context is ``tokens[:target]``.
        scores: One score per context token, ``[ctx]``.
        fractions: Fractions of the context, each in (0, 1].
        mask: ``"zero"`` (HETA's default), ``"mean"`` or ``"token:<id>"``.
        protected: Leading positions never masked (0 or 1).

    Returns:
        :class:`HardTopK`.

    Raises:
        ValueError: Bad tokens/target/scores/fractions, unknown mask scheme, or no
            unprotected position.

    Examples:
        >>> from heta_lens.testing import tiny_bridge
        >>> scores = torch.tensor([0.1, 0.5, 0.2, 0.2], dtype=torch.float64)
        >>> res = hard_topk_kl(tiny_bridge(), torch.tensor([1, 5, 7, 3, 9]), target=4,
        ...                    scores=scores)
        >>> res.k, res.ns <= 0.0 <= res.nc
        ((1, 1, 2), True)
    """
    steps = check_fractions(fractions)
    adapter, req, raw = validated(model, tokens, target=target, scores=scores)
    n_free = check_protected(protected, req.target)
    counts = tuple(count_for_fraction(f, n_free) for f in steps)
    with preserved_model_state(model), torch.no_grad():
        x = adapter.embed(req.prefix[None])[0]
        rows = hard_rows(x, mask_rows(adapter, x, mask), raw, counts=counts, protected=protected)
        log_p, _ = distinct_log_probs(adapter, req, rows)
    return hard_from_log_probs(
        log_p, fractions=steps, counts=counts, mask=mask, target_id=req.target_id
    )


def hard_rows(
    x: Float[Tensor, "ctx d_model"],
    replacements: Float[Tensor, "ctx d_model"],
    scores: Float[Tensor, " ctx"],
    *,
    counts: Sequence[int],
    protected: int = 0,
) -> Float[Tensor, "row ctx d_model"]:
    """The copies of :func:`hard_topk_kl`: unmasked, top-k masked and top-k kept per count
    (the first ``protected`` positions are never masked)."""
    top = top_k_masks(scores, counts, protected=protected)
    rest = ~top & free_mask(x.shape[0], protected, top.device)
    return torch.cat([x[None], replaced(x, replacements, top), replaced(x, replacements, rest)])


def hard_from_log_probs(
    log_p: Float[Tensor, "row d_vocab"],
    *,
    fractions: tuple[float, ...],
    counts: tuple[int, ...],
    mask: str,
    target_id: int | None = None,
) -> HardTopK:
    """:class:`HardTopK` from the log-probabilities of the :func:`hard_rows` copies; with
    ``target_id``, also their target column read on log p(target) (``HardTopK.logp``)."""
    kl = kl_divergence(log_p[0], log_p[1:]).tolist()
    n = len(fractions)
    nc_values = tuple(kl[:n])
    ns_values = tuple(-v for v in kl[n:])
    return HardTopK(
        nc=sum(nc_values) / n,
        ns=sum(ns_values) / n,
        fractions=fractions,
        k=counts,
        nc_per_fraction=nc_values,
        ns_per_fraction=ns_values,
        mask=mask,
        logp=None if target_id is None else hard_logp(log_p[:, target_id], n_fractions=n),
    )
