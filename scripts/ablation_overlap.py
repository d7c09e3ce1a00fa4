"""How full HETA's scores relate to its KL-only and Hessian-only ablations in an eval run.

    python scripts/ablation_overlap.py evals/runs/tellmewhy-smollm2-135m [--fraction 0.2]

Reads the stored scores (no model run) of every (instance, target) that has rows for ``heta``,
``heta_kl_only`` and ``heta_hessian_only`` and prints, per method pair and over targets:

- top-fraction overlap: |top_k(heta) ∩ top_k(other)| / k with k = round(fraction · ctx)
  (at least 1; ties broken by position, as ``numpy.argsort(kind="stable")`` on −score);
- median Spearman ρ over all context positions (``scipy.stats.spearmanr``);
- median effective support: exp(entropy) / ctx of the scores clamped at 0 and normalised to
  sum 1 (1 = uniform, 1/ctx = all mass on one token) — how concentrated each method's mass is,
  which is what Soft-NS/NC's keep probabilities are made of.
"""

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from heta_lens.evals.store import read_rows

METHODS = ("heta", "heta_kl_only", "heta_hessian_only")


def effective_support(scores: np.ndarray) -> float:
    """exp(entropy) / len of the non-negative part of ``scores`` normalised to sum 1."""
    p = np.clip(scores, 0.0, None)
    if p.sum() <= 0.0:
        return math.nan
    p = p / p.sum()
    q = p[p > 0]
    return float(np.exp(-(q * np.log(q)).sum())) / p.size


def top_overlap(a: np.ndarray, b: np.ndarray, fraction: float) -> float:
    """Share of ``a``'s top ``round(fraction · len)`` positions that are in ``b``'s."""
    k = max(1, round(fraction * a.size))
    top_a = set(np.argsort(-a, kind="stable")[:k].tolist())
    top_b = set(np.argsort(-b, kind="stable")[:k].tolist())
    return len(top_a & top_b) / k


def main(directory: str, *, fraction: float) -> None:
    scores: dict[tuple[str, int], dict[str, np.ndarray]] = {}
    for row in read_rows(Path(directory)):
        if row["method"] in METHODS:
            key = (row["uid"], row["target"])
            scores.setdefault(key, {})[row["method"]] = np.asarray(row["scores"], dtype=float)
    complete = [s for s in scores.values() if len(s) == len(METHODS)]
    if not complete:
        raise SystemExit(f"no target in {directory} has rows for all of {', '.join(METHODS)}")
    print(f"{len(complete)} targets; top fraction {fraction}\n")
    print("| heta vs | top overlap (mean) | Spearman ρ (median) |")
    print("|---|---|---|")
    for other in METHODS[1:]:
        overlap = [top_overlap(s["heta"], s[other], fraction) for s in complete]
        rho = [float(spearmanr(s["heta"], s[other])[0]) for s in complete]
        print(f"| {other} | {np.mean(overlap):.2f} | {np.nanmedian(rho):.3f} |")
    print("\n| method | effective support / ctx (median) |")
    print("|---|---|")
    for method in METHODS:
        support: Sequence[float] = [effective_support(s[method]) for s in complete]
        print(f"| {method} | {np.nanmedian(support):.3f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", help="an eval run directory (holds rows*.jsonl)")
    parser.add_argument("--fraction", type=float, default=0.2, help="top fraction compared")
    args = parser.parse_args()
    main(args.directory, fraction=args.fraction)
