"""Faithfulness and alignment metrics for attributions (docs/evaluation.md).

- :mod:`~heta_lens.evals.metrics.soft`: ReAGent's Soft-NC / Soft-NS and the log ratio.
- :mod:`~heta_lens.evals.metrics.hard`: ``hard_topk_kl`` (official HETA code's metric).
- :mod:`~heta_lens.evals.metrics.curves`: AOPC deletion / insertion curves.
- :mod:`~heta_lens.evals.metrics.perturbation`: Soft, hard-top-k and AOPC from one forward.
- :mod:`~heta_lens.evals.metrics.target`: the same three read on log p(target) (``*_logp``).
- :mod:`~heta_lens.evals.metrics.alignment`: DSA (fine / coarse) and top-k F1.
- :mod:`~heta_lens.evals.metrics.causal`: Patch-Corr, Intervention@k, misattribution.
- :mod:`~heta_lens.evals.metrics.sensitivity`: score spread under embedding noise.
- :mod:`~heta_lens.evals.metrics.controls`: concentration controls (rank, matched, perm).
- :mod:`~heta_lens.evals.metrics.rank`: Spearman ρ with average ranks for ties.
- :mod:`~heta_lens.evals.metrics.stats`: bootstrap intervals.
"""

from heta_lens.evals.metrics.alignment import dsa, topk_f1
from heta_lens.evals.metrics.causal import CausalScores, TokenEffects, causal_scores, token_effects
from heta_lens.evals.metrics.controls import (
    CONTROLS,
    apply_control,
    controlled_soft_scores,
    matched_concentration,
    permuted_profile,
    rank_normalize,
    temper,
)
from heta_lens.evals.metrics.curves import AopcCurves, aopc_curves
from heta_lens.evals.metrics.hard import HardTopK, hard_topk_kl
from heta_lens.evals.metrics.perturbation import PerturbationMetrics, perturbation_metrics
from heta_lens.evals.metrics.rank import spearman
from heta_lens.evals.metrics.ratio import log_ratio
from heta_lens.evals.metrics.sensitivity import embedding_noise, sensitivity, token_noise
from heta_lens.evals.metrics.soft import (
    SoftScores,
    hellinger_distance,
    normalize_attribution,
    normalize_free,
    random_attribution,
    soft_scores,
)
from heta_lens.evals.metrics.stats import (
    Interval,
    bootstrap_ci,
    bootstrap_cluster_ci,
    bootstrap_log_ratio,
)
from heta_lens.evals.metrics.target import AopcLogp, HardLogp, SoftLogp

__all__ = [
    "CONTROLS",
    "apply_control",
    "controlled_soft_scores",
    "matched_concentration",
    "normalize_free",
    "permuted_profile",
    "rank_normalize",
    "temper",
    "AopcCurves",
    "AopcLogp",
    "HardLogp",
    "SoftLogp",
    "CausalScores",
    "TokenEffects",
    "causal_scores",
    "embedding_noise",
    "sensitivity",
    "spearman",
    "token_effects",
    "token_noise",
    "HardTopK",
    "Interval",
    "PerturbationMetrics",
    "SoftScores",
    "aopc_curves",
    "bootstrap_ci",
    "bootstrap_cluster_ci",
    "bootstrap_log_ratio",
    "dsa",
    "hard_topk_kl",
    "hellinger_distance",
    "log_ratio",
    "perturbation_metrics",
    "normalize_attribution",
    "random_attribution",
    "soft_scores",
    "topk_f1",
]
