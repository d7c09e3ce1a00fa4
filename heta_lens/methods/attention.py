"""Attention baselines: attention rollout (Abnar & Zuidema 2020) and last-layer attention.

Both read the attention probabilities A_l^h of one forward over the prefix x_<T
(``adapter.capture_attention(prefix).pattern``, ``[layer, head_index, query_pos, key_pos]``)
and score the context from the row of query position T − 1, the position whose logits predict
the target x_T. GQA models report one pattern per query head, so heads are query heads.
"""

from dataclasses import dataclass
from typing import Literal, get_args

import torch
from jaxtyping import Float
from torch import Tensor, nn

from heta_lens._typing import TokensLike, typechecked
from heta_lens.hooks import ModelAdapter
from heta_lens.inputs import Prepared
from heta_lens.methods.common import run_baseline
from heta_lens.registry import MethodSpec
from heta_lens.result import AttributionResult
from heta_lens.targets import TargetLike

HeadReduction = Literal["mean", "max"]


def _check_heads(head_reduction: str) -> None:
    if head_reduction not in get_args(HeadReduction):
        raise ValueError(f"head_reduction must be 'mean' or 'max'; got {head_reduction!r}")


@dataclass(frozen=True, kw_only=True)
class AttentionRolloutConfig:
    """Rollout options.

    Attributes:
        residual: Weight of the identity (the residual connection) in each layer's mixing
            matrix, in [0, 1]; Abnar & Zuidema use 0.5.
        head_reduction: How heads are combined before mixing: ``"mean"`` (the paper) or
            ``"max"``.
    """

    residual: float = 0.5
    head_reduction: HeadReduction = "mean"

    def __post_init__(self) -> None:
        _check_heads(self.head_reduction)
        if not 0.0 <= self.residual <= 1.0:
            raise ValueError(f"residual must lie in [0, 1]; got {self.residual}")


@dataclass(frozen=True, kw_only=True)
class LastLayerAttentionConfig:
    """Last-layer attention options: ``head_reduction`` ``"mean"`` (default) or ``"max"``."""

    head_reduction: HeadReduction = "mean"

    def __post_init__(self) -> None:
        _check_heads(self.head_reduction)


@typechecked
def reduce_heads(
    pattern: Float[Tensor, "*layer head_index query_pos key_pos"], *, head_reduction: HeadReduction
) -> Float[Tensor, "*layer query_pos key_pos"]:
    """Mean or max of the attention probabilities over heads."""
    _check_heads(head_reduction)
    if head_reduction == "mean":
        return pattern.mean(dim=-3)
    return pattern.amax(dim=-3)


@typechecked
def rollout_mixing(
    pattern: Float[Tensor, "layer head_index query_pos key_pos"],
    *,
    residual: float = 0.5,
    head_reduction: HeadReduction = "mean",
) -> Float[Tensor, "layer query_pos key_pos"]:
    """Â_l = residual·I + (1 − residual)·reduce_h A_l, each row re-normalised to sum 1."""
    n = pattern.shape[-1]
    eye = torch.eye(n, dtype=pattern.dtype, device=pattern.device)
    mixed = residual * eye + (1.0 - residual) * reduce_heads(pattern, head_reduction=head_reduction)
    return mixed / mixed.sum(dim=-1, keepdim=True)


@typechecked
def rollout_matrix(
    pattern: Float[Tensor, "layer head_index query_pos key_pos"],
    *,
    residual: float = 0.5,
    head_reduction: HeadReduction = "mean",
) -> Float[Tensor, "query_pos key_pos"]:
    """R = Â_{L−1} ⋯ Â_1 Â_0 (:func:`rollout_mixing`): R[q, i] is the flow from input i to q.

    Every row of R sums to 1 (a product of row-stochastic matrices).
    """
    mixing = rollout_mixing(pattern, residual=residual, head_reduction=head_reduction)
    rollout = torch.eye(pattern.shape[-1], dtype=pattern.dtype, device=pattern.device)
    for layer_mix in mixing:
        rollout = layer_mix @ rollout
    return rollout


@typechecked
def attention_rollout(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: TargetLike = None,
    config: AttentionRolloutConfig | None = None,
) -> AttributionResult:
    """Attention rollout (Abnar & Zuidema 2020, residual-aware).

    With A_l the attention of layer l over the prefix x_<T, Â_l = r·I + (1 − r)·mean_h A_l
    (rows re-normalised to sum 1; ``head_reduction="max"`` takes the max over heads) and
    R = Â_{L−1} ⋯ Â_0, score_i = R[T − 1, i] for i < T. Scores are non-negative and sum to 1.

    Raises:
        TypeError, ValueError: Bad model, tokens or target (see :func:`run_baseline`).

    Examples:
        >>> import torch
        >>> from heta_lens.testing import tiny_bridge
        >>> result = attention_rollout(tiny_bridge(), torch.tensor([1, 5, 7, 3]), target=3)
        >>> result.scores.shape, round(float(result.scores.sum()), 6)
        (torch.Size([3]), 1.0)
    """
    cfg = config or AttentionRolloutConfig()

    def score(adapter: ModelAdapter, req: Prepared) -> Tensor:
        pattern = adapter.capture_attention(req.prefix).pattern
        rollout = rollout_matrix(pattern, residual=cfg.residual, head_reduction=cfg.head_reduction)
        return rollout[-1]

    return run_baseline(model, tokens, target=target, method="attention_rollout", score_fn=score)


@typechecked
def last_layer_attention(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: TargetLike = None,
    config: LastLayerAttentionConfig | None = None,
) -> AttributionResult:
    """Raw attention of the last layer: score_i = mean_h A_{L−1}^h[T − 1, i] (or max over h).

    Raises:
        TypeError, ValueError: Bad model, tokens or target (see :func:`run_baseline`).
    """
    cfg = config or LastLayerAttentionConfig()

    def score(adapter: ModelAdapter, req: Prepared) -> Tensor:
        last = adapter.capture_attention(req.prefix).pattern[-1]
        return reduce_heads(last, head_reduction=cfg.head_reduction)[-1]

    return run_baseline(model, tokens, target=target, method="last_layer_attention", score_fn=score)


METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(
        name="attention_rollout",
        fn=attention_rollout,
        default_config=AttentionRolloutConfig(),
        description="Attention rollout (Abnar & Zuidema 2020), residual 0.5, mean over heads",
    ),
    MethodSpec(
        name="last_layer_attention",
        fn=last_layer_attention,
        default_config=LastLayerAttentionConfig(),
        description="Last layer's attention from the predicting position, mean over heads",
    ),
)
