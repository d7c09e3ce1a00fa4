"""Soft-NS/NC, ``hard_topk_kl`` and AOPC curves of one attribution from one batched forward.

The three metrics perturb the same input embeddings and read the same next-token
distribution, and their copies overlap: the unperturbed input is in all three; the all-masked
input is Soft's p_0 and, with ``mask="zero"``, AOPC's empty end; ``hard_topk_kl``'s masked
copies are AOPC's deletion / insertion steps at the fractions the two share (the eval
defaults 0.1 / 0.2 / 0.3); AOPC's step at fraction 1 repeats its two ends.
:func:`perturbation_metrics` builds each metric's copies with its own module's ``*_rows``
function, forwards every distinct copy once (bit-for-bit equality) and reads each metric off
its rows with that module's ``*_from_log_probs``. With the eval defaults (4 mask draws, hard
0.1–0.3, AOPC 0.1–1.0, zero mask) that is 28 forwarded copies instead of 39.

Numbers: a copy's log-probabilities depend on the batch it runs in only through float
round-off (CPU float32 matmuls are not bit-identical across batch sizes; on SmolLM2-135M a
log-probability moved by up to 3e-5 between batches of 1 and 22), so the joint values equal
the single-metric functions' to round-off. The batch is a function of the attribution and the
options alone, so repeated and resumed runs give identical numbers.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor, nn

from heta_lens._typing import TokensLike, typechecked
from heta_lens.evals.metrics._common import (
    check_fractions,
    check_protected,
    count_for_fraction,
    distinct_log_probs,
    validated,
)
from heta_lens.evals.metrics.curves import AopcCurves, aopc_from_log_probs, aopc_rows
from heta_lens.evals.metrics.hard import HardTopK, hard_from_log_probs, hard_rows
from heta_lens.evals.metrics.soft import (
    SoftScores,
    check_n_draws,
    soft_from_log_probs,
    soft_rows,
)
from heta_lens.hooks import preserved_model_state
from heta_lens.masking import mask_rows


@dataclass(frozen=True, kw_only=True)
class PerturbationMetrics:
    """The requested metrics (``None`` where not requested) and the forward's size.

    Attributes:
        soft: :func:`~heta_lens.evals.metrics.soft.soft_scores`'s result.
        hard: :func:`~heta_lens.evals.metrics.hard.hard_topk_kl`'s result.
        aopc: :func:`~heta_lens.evals.metrics.curves.aopc_curves`'s result.
        n_copies: Embedding copies the requested metrics define.
        n_forwarded: Distinct copies run through the model.
    """

    soft: SoftScores | None
    hard: HardTopK | None
    aopc: AopcCurves | None
    n_copies: int
    n_forwarded: int


@typechecked
def perturbation_metrics(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: int,
    scores: Float[Tensor, " ctx"],
    n_draws: int | None = None,
    generator: torch.Generator | None = None,
    hard_fractions: Sequence[float] | None = None,
    aopc_fractions: Sequence[float] | None = None,
    mask: str = "zero",
    protected: int = 0,
) -> PerturbationMetrics:
    """Any of Soft-NS/NC, ``hard_topk_kl`` and AOPC curves, sharing one forward (module doc).

    Each result is the one its own function gives for the same arguments (to float round-off
    of the batch, module doc); Soft's masks are drawn from ``generator`` exactly as
    :func:`~heta_lens.evals.metrics.soft.soft_scores` draws them. Each result carries its
    target-side version (``.logp``, :mod:`heta_lens.evals.metrics.target`): the same copies
    read on log p(target), no extra copy.

    Args:
        model: A ``HookedTransformer`` or ``TransformerBridge``.
        tokens: Token ids (or a string) containing the target.
        target: Index of the explained token; the context is ``tokens[:target]``.
        scores: One attribution score per context token, ``[ctx]``.
        n_draws: Soft-NS/NC mask draws; ``None`` skips Soft.
        generator: Source of Soft's mask randomness (required with ``n_draws``).
        hard_fractions: ``hard_topk_kl``'s fractions; ``None`` skips it.
        aopc_fractions: AOPC's step fractions; ``None`` skips it.
        mask: Token-removal scheme of ``hard_topk_kl`` and AOPC (Soft always zeroes elements).
        protected: Leading positions (0 or 1: the BOS/sink) no metric perturbs nor
            normalises over (:mod:`heta_lens.evals.protocol`).

    Returns:
        :class:`PerturbationMetrics`.

    Raises:
        ValueError: No metric requested, ``n_draws`` without a generator or below 1, bad
            tokens/target/scores/fractions, an unknown mask scheme, or no unprotected
            position.

    Examples:
        >>> from heta_lens.testing import tiny_bridge
        >>> scores = torch.tensor([0.1, 0.5, 0.2, 0.2], dtype=torch.float64)
        >>> res = perturbation_metrics(tiny_bridge(), torch.tensor([1, 5, 7, 3, 9]), target=4,
        ...     scores=scores, n_draws=2, generator=torch.Generator().manual_seed(0),
        ...     hard_fractions=(0.5,), aopc_fractions=(0.5, 1.0))
        >>> res.n_copies, res.n_forwarded  # 6 Soft + 3 hard + 6 AOPC copies; 8 distinct
        (15, 8)
    """
    if n_draws is None and hard_fractions is None and aopc_fractions is None:
        raise ValueError("no metric requested: pass n_draws, hard_fractions or aopc_fractions")
    if n_draws is not None:
        check_n_draws(n_draws)
        if generator is None:
            raise ValueError("Soft-NS/NC (n_draws) needs a generator for its mask draws")
    hard_steps = None if hard_fractions is None else check_fractions(hard_fractions)
    aopc_steps = None if aopc_fractions is None else check_fractions(aopc_fractions)
    adapter, req, raw = validated(model, tokens, target=target, scores=scores)
    n_free = check_protected(protected, req.target)

    def counts(steps: tuple[float, ...]) -> tuple[int, ...]:
        return tuple(count_for_fraction(f, n_free) for f in steps)

    with preserved_model_state(model), torch.no_grad():
        x = adapter.embed(req.prefix[None])[0]
        parts: list[Tensor] = []
        if n_draws is not None and generator is not None:
            parts.append(
                soft_rows(x, raw, n_draws=n_draws, generator=generator, protected=protected)
            )
        if hard_steps is not None or aopc_steps is not None:
            repl = mask_rows(adapter, x, mask)
            if hard_steps is not None:
                steps = counts(hard_steps)
                parts.append(hard_rows(x, repl, raw, counts=steps, protected=protected))
            if aopc_steps is not None:
                steps = counts(aopc_steps)
                parts.append(aopc_rows(x, repl, raw, counts=steps, protected=protected))
        rows = torch.cat(parts)
        log_p, n_forwarded = distinct_log_probs(adapter, req, rows)
        per_part = log_p.split([p.shape[0] for p in parts])
    it = iter(per_part)
    tid = req.target_id
    soft = (
        None if n_draws is None else soft_from_log_probs(next(it), n_draws=n_draws, target_id=tid)
    )
    hard = (
        None
        if hard_steps is None
        else hard_from_log_probs(
            next(it), fractions=hard_steps, counts=counts(hard_steps), mask=mask, target_id=tid
        )
    )
    aopc = (
        None
        if aopc_steps is None
        else aopc_from_log_probs(
            next(it)[:, req.target_id],
            fractions=aopc_steps,
            counts=counts(aopc_steps),
            mask=mask,
        )
    )
    return PerturbationMetrics(
        soft=soft, hard=hard, aopc=aopc, n_copies=int(rows.shape[0]), n_forwarded=n_forwarded
    )
