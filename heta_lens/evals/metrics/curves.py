"""AOPC deletion and insertion curves (docs/evaluation.md, "AOPC, comprehensiveness, …").

Tokens are taken in descending score order (ties: earlier position first) and, at step j,
the top k_j = max(1, ceil(f_j · ctx)) of them are "removed" (deletion curve) or are the only
ones left (insertion curve). "Removing" a token replaces its input embedding with the mask
row of :func:`heta_lens.masking.mask_rows` (``"zero"`` by default, as HETA masks); the
sequence keeps its length and every position keeps its positional encoding. Literal deletion
would shift every later token's position (RoPE / learned positions), mixing a position effect
into the measurement, and give every step a different length, which would need padding and
attention masks to batch; with replacement all steps (and both curves) run as ONE batched
forward, and the intervention is the same one ``hard_topk_kl`` and HETA's information term
use.

- Deletion (ERASER-style comprehensiveness, DeYoung et al. 2020):
  AOPC_del = mean_j (p_orig − p_del,j); higher = the top tokens matter more.
- Insertion (Petsiuk et al. 2018's insertion game, measured from the empty input):
  AOPC_ins = mean_j (p_ins,j − p_empty), where p_empty is the probability with every context
  token masked; higher = the top tokens alone recover more of the prediction. Subtracting
  p_empty makes the area 0 for an input the model ignores and mirrors the deletion form
  (both are gains over a fixed endpoint of the curve). ERASER's sufficiency,
  mean_j (p_orig − p_ins,j) (lower = better), is the same curve read from the other end and is
  exposed as ``AopcCurves.sufficiency_aopc``.

p denotes the probability of the explained token ``tokens[target]`` after ``tokens[:target]``.
The same curves on log p (``AopcCurves.logp``, row keys ``aopc_deletion_logp`` /
``aopc_insertion_logp``) are defined in :mod:`heta_lens.evals.metrics.target`.

With ``protected=1`` (the ``standard`` protocol, :mod:`heta_lens.evals.protocol`) position 0
(BOS/sink) is never removed: steps rank and count positions ≥ 1 only
(k_j = max(1, ceil(f_j · (ctx − 1)))), and "every token masked" (p_empty) keeps position 0.
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
from heta_lens.evals.metrics.target import AopcLogp, aopc_logp
from heta_lens.hooks import preserved_model_state
from heta_lens.masking import mask_rows

DEFAULT_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclass(frozen=True, kw_only=True)
class AopcCurves:
    """Deletion and insertion curves of one attribution for one target (plot-ready).

    Attributes:
        fractions: x-axis: fraction of the context removed / inserted at each step.
        k: Tokens removed / inserted at each step.
        p_deletion: p(target) with the top-k tokens masked, per step.
        p_insertion: p(target) with only the top-k tokens unmasked, per step.
        p_orig: p(target) with nothing masked (deletion curve at 0 tokens).
        p_empty: p(target) with every context token masked (insertion curve at 0 tokens).
        mask: Mask scheme used.
        logp: The same curves on log p(target) (:mod:`heta_lens.evals.metrics.target`).
    """

    fractions: tuple[float, ...]
    k: tuple[int, ...]
    p_deletion: tuple[float, ...]
    p_insertion: tuple[float, ...]
    p_orig: float
    p_empty: float
    mask: str
    logp: AopcLogp | None = None

    def __post_init__(self) -> None:
        n = len(self.fractions)
        if n == 0:
            raise ValueError("fractions must not be empty")
        if not len(self.k) == len(self.p_deletion) == len(self.p_insertion) == n:
            raise ValueError("k, p_deletion and p_insertion need one entry per fraction")

    @property
    def deletion_aopc(self) -> float:
        """mean_j (p_orig − p_deletion[j])."""
        return sum(self.p_orig - p for p in self.p_deletion) / len(self.p_deletion)

    @property
    def insertion_aopc(self) -> float:
        """mean_j (p_insertion[j] − p_empty)."""
        return sum(p - self.p_empty for p in self.p_insertion) / len(self.p_insertion)

    @property
    def sufficiency_aopc(self) -> float:
        """ERASER sufficiency: mean_j (p_orig − p_insertion[j]) (lower = better)."""
        return sum(self.p_orig - p for p in self.p_insertion) / len(self.p_insertion)

    def to_dict(self) -> dict[str, Any]:
        """Fields plus the three areas (and ``logp``'s two), JSON-ready."""
        return {
            **asdict(self),
            "logp": None if self.logp is None else self.logp.to_dict(),
            "deletion_aopc": self.deletion_aopc,
            "insertion_aopc": self.insertion_aopc,
            "sufficiency_aopc": self.sufficiency_aopc,
        }


@typechecked
def aopc_curves(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: int,
    scores: Float[Tensor, " ctx"],
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    mask: str = "zero",
    protected: int = 0,
) -> AopcCurves:
    """Deletion and insertion curves of ``scores`` for ``tokens[target]`` (module docstring).

    One batched forward of 2 + 2·len(fractions) embedding copies (:func:`aopc_rows`): the
    original, all masked, and per step the top-k masked and all but the top-k masked; a copy
    equal to an earlier one (the steps at fraction 1 repeat the two ends) runs once.

    Args:
        model: A ``HookedTransformer`` or ``TransformerBridge``.
        tokens: Token ids (or a string) containing the target.
        target: Index of the explained token; the context is ``tokens[:target]``.
        scores: One score per context token, ``[ctx]`` (raw scores rank the tokens).
        fractions: Step fractions of the context, each in (0, 1].
        mask: ``"zero"`` (default), ``"mean"`` or ``"token:<id>"``.
        protected: Leading positions never removed (0 or 1; module docstring).

    Returns:
        :class:`AopcCurves`.

    Raises:
        ValueError: Bad tokens/target/scores/fractions, unknown mask scheme, or no
            unprotected position.

    Examples:
        >>> from heta_lens.testing import tiny_bridge
        >>> scores = torch.tensor([0.1, 0.5, 0.2, 0.2], dtype=torch.float64)
        >>> curves = aopc_curves(tiny_bridge(), torch.tensor([1, 5, 7, 3, 9]), target=4,
        ...                      scores=scores, fractions=(0.25, 0.5, 1.0))
        >>> curves.k, len(curves.p_deletion)
        ((1, 2, 4), 3)
    """
    steps = check_fractions(fractions)
    adapter, req, raw = validated(model, tokens, target=target, scores=scores)
    n_free = check_protected(protected, req.target)
    counts = tuple(count_for_fraction(f, n_free) for f in steps)
    with preserved_model_state(model), torch.no_grad():
        x = adapter.embed(req.prefix[None])[0]
        rows = aopc_rows(x, mask_rows(adapter, x, mask), raw, counts=counts, protected=protected)
        log_p, _ = distinct_log_probs(adapter, req, rows)
    return aopc_from_log_probs(log_p[:, req.target_id], fractions=steps, counts=counts, mask=mask)


def aopc_rows(
    x: Float[Tensor, "ctx d_model"],
    replacements: Float[Tensor, "ctx d_model"],
    scores: Float[Tensor, " ctx"],
    *,
    counts: Sequence[int],
    protected: int = 0,
) -> Float[Tensor, "row ctx d_model"]:
    """The copies of :func:`aopc_curves`: unmasked, all masked, top-k masked per count, all but
    the top-k masked per count (the first ``protected`` positions are never masked)."""
    top = top_k_masks(scores, counts, protected=protected)
    free = free_mask(x.shape[0], protected, top.device)
    ends = torch.stack([torch.zeros_like(free), free])
    return replaced(x, replacements, torch.cat([ends, top, ~top & free]))


def aopc_from_log_probs(
    target_log_p: Float[Tensor, " row"],
    *,
    fractions: tuple[float, ...],
    counts: tuple[int, ...],
    mask: str,
) -> AopcCurves:
    """:class:`AopcCurves` from the explained token's log-probability in each
    :func:`aopc_rows` copy (``logp``: the same values as log-probabilities)."""
    values = target_log_p.exp().tolist()
    n = len(fractions)
    return AopcCurves(
        fractions=fractions,
        k=counts,
        p_deletion=tuple(values[2 : 2 + n]),
        p_insertion=tuple(values[2 + n :]),
        p_orig=values[0],
        p_empty=values[1],
        mask=mask,
        logp=aopc_logp(target_log_p, n_steps=n),
    )
