"""Rank statistics shared by the evals: Spearman ρ with average ranks for ties."""

import numpy as np
from torch import Tensor


def average_ranks(values: Tensor) -> np.ndarray:
    """Ranks 0..n−1 of ``values`` (ascending); tied values share their mean rank.

    Examples:
        >>> import torch
        >>> average_ranks(torch.tensor([3.0, 1.0, 3.0, 2.0])).tolist()
        [2.5, 0.0, 2.5, 1.0]
    """
    x = values.detach().double().cpu().numpy().ravel()
    order = x.argsort(kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=float)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse]


def spearman(a: Tensor, b: Tensor) -> float:
    """Spearman ρ of two equal-length vectors (Pearson correlation of average ranks).

    Returns NaN when either vector is constant (ρ is undefined there).

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
    ra, rb = average_ranks(a), average_ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])
