"""Rank statistics shared by the evals: Spearman ρ with average ranks for ties (scipy)."""

from typing import Any

import numpy as np
from scipy import stats
from torch import Tensor


def _numpy(values: Tensor) -> np.ndarray:
    return values.detach().double().cpu().numpy().ravel()


def average_ranks(values: Tensor) -> np.ndarray:
    """Ranks 0..n−1 of ``values`` (ascending); tied values share their mean rank
    (``scipy.stats.rankdata(method="average") - 1``).

    Examples:
        >>> import torch
        >>> average_ranks(torch.tensor([3.0, 1.0, 3.0, 2.0])).tolist()
        [2.5, 0.0, 2.5, 1.0]
    """
    return stats.rankdata(_numpy(values), method="average") - 1.0


def spearman(a: Tensor, b: Tensor) -> float:
    """Spearman ρ of two equal-length vectors (``scipy.stats.spearmanr``, average ranks).

    Returns NaN when either vector is constant (ρ is undefined there; scipy would warn).

    Raises:
        ValueError: Different lengths or fewer than 2 entries.

    Examples:
        >>> import torch
        >>> spearman(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([10.0, 30.0, 20.0]))
        0.5
    """
    if a.numel() != b.numel():
        raise ValueError(f"spearman needs equal lengths; got {a.numel()} and {b.numel()}")
    if a.numel() < 2:
        raise ValueError("spearman needs at least 2 entries")
    x, y = _numpy(a), _numpy(b)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    result: Any = stats.spearmanr(x, y)  # SignificanceResult; scipy's stubs type it loosely
    return float(result.statistic)
