"""Leave-one-out occlusion baselines: mask one context token, measure what the target loses.

Masking token i replaces its input embedding by ``mask_rows(adapter, E, mask)[i]``
(:func:`heta_lens.masking.mask_rows`, the schemes HETA uses: ``"zero"`` by default,
``"mean"``, ``"token:<id>"``); every other embedding is untouched. One masked copy per context
token, ``batch_size`` copies per batched :meth:`ModelAdapter.last_log_probs` forward.

- :func:`occlusion`: the drop in the target's log-probability,
  ``s_i = log P(x_T | x_<T) − log P(x_T | x_<T with token i masked)``, computed by Captum's
  ``FeatureAblation`` (the feature-ablation baseline; as fast as our own batched loop and
  identical to it on our models, so Captum's is used).
- :func:`kl_occlusion`: the change of the whole next-token distribution,
  ``s_i = KL(P_orig(·|x_<T) ‖ P_masked_i(·|x_<T))`` — HETA's information term I_i without the
  gate, computed by :func:`heta_lens.information.compute_information`.

Targets (:mod:`heta_lens.targets`): :func:`occlusion` takes every kind (s_i = f − f_masked_i
for the target's f); :func:`kl_occlusion` takes tokens, contrasts (the two-way KL, or the
full one with ``Contrast(..., kl="vocab")``) and spans (Σ_j KL), not metrics (no
distribution: HETA's |Δf| for a metric is |occlusion|).

Cost per call (ctx context tokens, B = ``batch_size``): 2 plain forwards (the target's
log-probability for the result, the unmasked reference) + ⌈ctx/B⌉ batched forwards holding the
ctx masked copies (full-length ``ctx``-token sequences; ``kl_occlusion`` with
``strategy="prefix"`` runs only the suffix from each chunk's first masked position).
"""

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor, nn

from heta_lens._typing import TokensLike, typechecked
from heta_lens.config import KlStrategy
from heta_lens.hooks import ModelAdapter
from heta_lens.information import compute_information
from heta_lens.inputs import Prepared
from heta_lens.masking import mask_rows
from heta_lens.methods.common import ALL_KINDS, log_prob_fn, prefix_embeddings, run_baseline
from heta_lens.objective import TargetKind
from heta_lens.registry import MethodSpec
from heta_lens.result import AttributionResult
from heta_lens.targets import TargetLike

KL_OCCLUSION_KINDS: tuple[TargetKind, ...] = ("token", "contrast", "span")
"""The target kinds :func:`kl_occlusion` takes (a metric has no distribution to compare)."""


def _check_mask_and_batch(mask: str, batch_size: int) -> None:
    if not isinstance(mask, str) or not mask:
        raise ValueError(f"mask must be a scheme name ('zero', 'mean', 'token:<id>'); got {mask!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")


@dataclass(frozen=True, kw_only=True)
class OcclusionConfig:
    """Options of :func:`occlusion`.

    Attributes:
        mask: Replacement of a masked token's input embedding: ``"zero"`` (default),
            ``"mean"`` (mean input embedding over the vocabulary) or ``"token:<id>"``.
        batch_size: Masked copies per batched forward.
    """

    mask: str = "zero"
    batch_size: int = 16

    def __post_init__(self) -> None:
        _check_mask_and_batch(self.mask, self.batch_size)


@dataclass(frozen=True, kw_only=True)
class KlOcclusionConfig:
    """Options of :func:`kl_occlusion`.

    Attributes:
        mask: As in :class:`OcclusionConfig`.
        batch_size: Masked copies per batched forward.
        strategy: ``"batched"`` (default: every masked copy is a full-length forward through
            :meth:`ModelAdapter.last_log_probs`) or ``"prefix"`` (reuse the unmasked prefix's
            key/value cache; same numbers, see :mod:`heta_lens.information`).
    """

    mask: str = "zero"
    batch_size: int = 16
    strategy: KlStrategy = "batched"

    def __post_init__(self) -> None:
        _check_mask_and_batch(self.mask, self.batch_size)
        if self.strategy not in ("batched", "prefix"):
            raise ValueError(f"unknown strategy {self.strategy!r}; valid: batched, prefix")


def occlusion_scores(
    adapter: ModelAdapter, req: Prepared, *, config: OcclusionConfig
) -> Float[Tensor, " ctx"]:
    """``log P(x_T | x_<T) − log P(x_T | x_<T, token i masked)`` for every context token i.

    Captum's ``FeatureAblation`` on f(E) (:func:`~heta_lens.methods.common.log_prob_fn`), one
    feature per token, the mask rows as baseline, ``batch_size`` masked copies a forward.
    """
    from captum.attr import FeatureAblation

    x = prefix_embeddings(adapter, req)
    ctx = x.shape[0]
    feature_mask = torch.arange(ctx, device=x.device)[None, :, None]  # broadcast over d_model
    with torch.no_grad():
        attr = FeatureAblation(log_prob_fn(adapter, req)).attribute(
            x[None],
            baselines=mask_rows(adapter, x, config.mask)[None],
            feature_mask=feature_mask,
            perturbations_per_eval=config.batch_size,
        )
    return attr[0, :, 0]


@typechecked
def occlusion(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: TargetLike = None,
    config: OcclusionConfig | None = None,
) -> AttributionResult:
    """Leave-one-out occlusion: ``s_i = log P(x_T|x_<T) − log P(x_T|x_<T, token i masked)``.

    Positive scores mark tokens whose masking lowers the target's probability. Computed by
    Captum's ``FeatureAblation`` on the input embeddings, one feature per token, the mask rows
    as baseline (:func:`occlusion_scores`); tested against one-at-a-time reruns.

    Args:
        model: A ``HookedTransformer`` or ``TransformerBridge``.
        tokens: Token ids containing the target, or a string.
        target: Index of the explained token (default: last).
        config: :class:`OcclusionConfig` (defaults when ``None``).

    Returns:
        An :class:`AttributionResult` with ``scores`` of shape ``[ctx]`` (nats).

    Raises:
        ValueError: Bad tokens/target or mask scheme.
    """
    cfg = OcclusionConfig() if config is None else config
    return run_baseline(
        model,
        tokens,
        target=target,
        method="occlusion",
        score_fn=lambda adapter, req: occlusion_scores(adapter, req, config=cfg),
        signed=True,
        kinds=ALL_KINDS,
    )


@typechecked
def kl_occlusion(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: TargetLike = None,
    config: KlOcclusionConfig | None = None,
) -> AttributionResult:
    """KL occlusion: ``s_i = KL(P_orig(·|x_<T) ‖ P_masked_i(·|x_<T))`` over the full vocabulary.

    HETA's information term without the semantic-flow gate (same masking, same function:
    :func:`heta_lens.information.compute_information`). Scores are non-negative; a mask that
    leaves token i unchanged gives exactly 0.

    Args:
        model: A ``HookedTransformer`` or ``TransformerBridge``.
        tokens: Token ids containing the target, or a string.
        target: Index of the explained token (default: last).
        config: :class:`KlOcclusionConfig` (defaults when ``None``).

    Returns:
        An :class:`AttributionResult` with ``scores`` of shape ``[ctx]`` (nats).

    Raises:
        ValueError: Bad tokens/target or mask scheme.
    """
    cfg = KlOcclusionConfig() if config is None else config
    return run_baseline(
        model,
        tokens,
        target=target,
        method="kl_occlusion",
        score_fn=lambda adapter, req: compute_information(
            adapter, req, mask=cfg.mask, chunk_size=cfg.batch_size, strategy=cfg.strategy
        ),
        kinds=KL_OCCLUSION_KINDS,
    )


METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(
        name="occlusion",
        fn=occlusion,
        default_config=OcclusionConfig(),
        description="leave-one-out: drop in log P(target) when one token's embedding is masked",
    ),
    MethodSpec(
        name="kl_occlusion",
        fn=kl_occlusion,
        default_config=KlOcclusionConfig(),
        description="KL(P_orig || P_masked_i) over the next-token distribution (HETA's I, no gate)",
    ),
)
