"""ReAGent's reported number: the log ratio of a metric's mean to the random baseline's."""

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from heta_lens._typing import typechecked

Values = Tensor | np.ndarray | Sequence[float | int]
"""Per-instance metric values: a 1-D tensor, array or sequence of numbers."""


def as_array(values: Values) -> np.ndarray:
    """Values as a 1-D float64 numpy array (tensors detached and moved to the CPU)."""
    if isinstance(values, Tensor):
        values = values.detach().cpu().to(torch.float64).numpy()
    out = np.asarray(values, dtype=np.float64)
    if out.ndim != 1:
        raise ValueError(f"expected a 1-D sequence of values; got shape {out.shape}")
    return out


@typechecked
def log_ratio(method_values: Values, random_values: Values) -> float:
    """ln( mean(method_values) / mean(random_values) ): ReAGent's reported number.

    0 means no better than the random baseline. Rules: NaN entries (degenerate instances) are
    dropped from each array before averaging; ±inf entries and negative values (the ratio of
    means of non-negative metrics is the only case defined) raise. The result is NaN when
    either array is empty after dropping or both means are 0, −inf when only the method mean is
    0 and +inf when only the random mean is 0.

    Raises:
        ValueError: Infinite or negative values, or input that is not 1-D.
    """
    m, r = _finite_means(as_array(method_values), as_array(random_values))
    return _log_ratio_of_means(m, r)


def _finite_means(method: np.ndarray, random: np.ndarray) -> tuple[float, float]:
    means = []
    for name, arr in (("method_values", method), ("random_values", random)):
        kept = arr[~np.isnan(arr)]
        if np.isinf(kept).any():
            raise ValueError(f"{name} contain infinite values")
        if (kept < 0).any():
            raise ValueError(f"{name} must be non-negative for a log ratio of means")
        means.append(float(kept.mean()) if kept.size else math.nan)
    return means[0], means[1]


def _log_ratio_of_means(m: float, r: float) -> float:
    if math.isnan(m) or math.isnan(r) or (m == 0.0 and r == 0.0):
        return math.nan
    if m == 0.0:
        return -math.inf
    if r == 0.0:
        return math.inf
    return math.log(m / r)
