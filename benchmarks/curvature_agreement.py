"""Agreement of the ``fast`` preset's curvature term with exact eq. 3, on eval instances.

    python benchmarks/curvature_agreement.py --per-dataset 13 \
        --out evals/runs/curvature-agreement-smollm2-135m

For each of the four eval datasets (LongRA, TellMeWhy, WikiText, curated), the first
``--per-dataset`` instances whose first explained target has at most ``--max-ctx`` context
tokens (one target per instance, so every pair is a different instance). On each pair, with the
same 8 Rademacher probes (generator seeded with 0, as both presets draw them):

- ``exact``: eq. 3, S_i = (1/m) Σ_k ‖Π_i H Π_i r_k‖₁ (``curvature_sensitivity``, ctx·m HVPs,
  the ``full`` preset's estimator);
- ``fast``: the row-block mass (1/m) Σ_k ‖Π_i H r_k‖₁ (``row_curvature``, m HVPs, the
  ``fast`` preset's estimator, which the stored eval runs used).

Each row records Spearman ρ and Pearson r over the context positions 1..ctx−1 (position 0, the
BOS/sink, is excluded from HETA's scores; ρ over every position is kept too), the same for the
gated curvature M·S (what enters HETA's score; the gate is identical for both presets), the
overlap of the top-5 positions, and both estimators' times. Exact eq. 3 costs ctx·m HVPs of a
ctx-token input, so pairs run shortest context first: a stopped run has the most pairs. Rows
are appended to ``OUT/rows.jsonl`` as they are computed; rerunning the command skips the pairs
already there; ``--shard K/N`` splits the pending pairs over N processes (one per core).
``OUT/summary.md`` holds the median and mean ρ per dataset with 95 % bootstrap
intervals (``scipy.stats.bootstrap``).
"""

import argparse
import fcntl
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats
from tqdm import tqdm

DATASETS = ("longra", "tellmewhy", "wikitext", "curated")


def pick_pairs(
    model: torch.nn.Module, datasets: list[str], per_dataset: int, max_ctx: int
) -> list[tuple[Any, int]]:
    """The (instance, target) pairs, interleaved across ``datasets``."""
    from heta_lens.evals import load_instances

    per: list[list[tuple[Any, int]]] = []
    for name in datasets:
        chosen: list[tuple[Any, int]] = []
        for inst in load_instances(name, model, limit=4 * per_dataset, progress=False):
            target = inst.targets[0]
            if target <= max_ctx:
                chosen.append((inst, target))
            if len(chosen) == per_dataset:
                break
        per.append(chosen)
    out: list[tuple[Any, int]] = []
    for i in range(max(len(p) for p in per)):
        out.extend(p[i] for p in per if i < len(p))
    return out


def agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Spearman ρ and Pearson r of two score vectors (positions 1.. only, and all)."""
    return {
        "spearman": _pearson(stats.rankdata(a[1:]), stats.rankdata(b[1:])),
        "pearson": _pearson(a[1:], b[1:]),
        "spearman_all": _pearson(stats.rankdata(a), stats.rankdata(b)),
    }


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r (of average ranks: Spearman ρ)."""
    return float(np.corrcoef(a, b)[0, 1])


def top_overlap(a: np.ndarray, b: np.ndarray, k: int = 5) -> float:
    """|top-k(a) ∩ top-k(b)| / k over positions 1.. (ties broken by position)."""
    k = min(k, len(a) - 1)
    top_a = set(np.argsort(-a[1:], kind="stable")[:k].tolist())
    top_b = set(np.argsort(-b[1:], kind="stable")[:k].tolist())
    return len(top_a & top_b) / k


def measure(model: torch.nn.Module, inst: Any, target: int, n_probes: int) -> dict[str, Any]:
    """One row: both estimators on ``inst.tokens[: target + 1]``."""
    import heta_lens as H

    tokens = torch.tensor(inst.tokens[: target + 1])
    t0 = time.perf_counter()
    fast = H.row_curvature(model, tokens, n_probes=n_probes).double().numpy()
    t1 = time.perf_counter()
    exact = H.curvature_sensitivity(model, tokens, n_probes=n_probes).double().numpy()
    t2 = time.perf_counter()
    gate = H.semantic_gate(model, tokens).double().numpy()
    gated = agreement(gate * fast, gate * exact)
    return {
        "uid": inst.uid,
        "dataset": inst.dataset,
        "target": target,
        "ctx": target,
        "n_probes": n_probes,
        **agreement(fast, exact),
        "gated_spearman": gated["spearman"],
        "gated_pearson": gated["pearson"],
        "top5_overlap": top_overlap(fast, exact),
        "gated_top5_overlap": top_overlap(gate * fast, gate * exact),
        "fast_s": t1 - t0,
        "exact_s": t2 - t1,
        "fast": fast.tolist(),
        "exact": exact.tolist(),
        "gate": gate.tolist(),
    }


def interval(values: list[float], statistic: Any) -> str:
    """``stat [lo, hi]`` with a 95 % BCa bootstrap interval (seeded)."""
    arr = np.asarray(values)
    if len(arr) < 3:
        return f"{statistic(arr):.3f}"
    res = stats.bootstrap(
        (arr,), statistic, confidence_level=0.95, n_resamples=9999, rng=np.random.default_rng(0)
    )
    ci = res.confidence_interval
    return f"{statistic(arr):.3f} [{ci.low:.3f}, {ci.high:.3f}]"


def summary(rows: list[dict[str, Any]], header: str) -> str:
    """The summary table (per dataset and all) as Markdown."""
    lines = [
        header,
        "",
        "| dataset | pairs | ctx (median, max) | median ρ(S) | mean ρ(S) [95 % CI] | min ρ(S) "
        "| mean ρ(M·S) [95 % CI] | top-5 overlap | exact / fast time |",
        "|---|---:|---|---|---|---:|---|---:|---:|",
    ]
    groups = [(d, [r for r in rows if r["dataset"] == d]) for d in DATASETS] + [("all", rows)]
    for name, group in groups:
        if not group:
            continue
        rho = [r["spearman"] for r in group]
        gated = [r["gated_spearman"] for r in group]
        ctx = [r["ctx"] for r in group]
        ratio = sum(r["exact_s"] for r in group) / sum(r["fast_s"] for r in group)
        lines.append(
            f"| {name} | {len(group)} | {int(np.median(ctx))}, {max(ctx)} "
            f"| {np.median(rho):.3f} | {interval(rho, np.mean)} | {min(rho):.3f} "
            f"| {interval(gated, np.mean)} | {np.mean([r['top5_overlap'] for r in group]):.2f} "
            f"| {ratio:.0f}× |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--per-dataset", type=int, default=13)
    parser.add_argument("--max-ctx", type=int, default=128)
    parser.add_argument("--n-probes", type=int, default=8)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--shard",
        default="0/1",
        help="K/N: this process measures every N-th pending pair from the K-th (run N processes "
        "with K = 0..N-1 on the same --out to use N cores; appends are locked)",
    )
    parser.add_argument("--summary-only", action="store_true", help="rewrite summary.md only")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows_path = args.out / "rows.jsonl"
    rows = [json.loads(x) for x in rows_path.read_text().splitlines()] if rows_path.exists() else []
    if not args.summary_only:
        import heta_lens as H

        model = H.load_model(args.model)
        pairs = pick_pairs(model, args.datasets.split(","), args.per_dataset, args.max_ctx)
        done = {(r["uid"], r["target"]) for r in rows}
        todo = sorted(((i, t) for i, t in pairs if (i.uid, t) not in done), key=lambda p: p[1])
        shard, n_shards = (int(x) for x in args.shard.split("/"))
        with rows_path.open("a") as fh:
            for inst, target in tqdm(todo[shard::n_shards], desc="curvature agreement"):
                row = measure(model, inst, target, args.n_probes)
                fcntl.flock(fh, fcntl.LOCK_EX)
                fh.write(json.dumps(row) + "\n")
                fh.flush()
                fcntl.flock(fh, fcntl.LOCK_UN)
                rows.append(row)
        rows = [json.loads(x) for x in rows_path.read_text().splitlines()]
    header = (
        f"# `fast` (row-block, m={args.n_probes}) vs exact eq. 3 curvature — {args.model}\n\n"
        f"{len(rows)} pairs (one target per instance, context ≤ {args.max_ctx} tokens), "
        "Spearman ρ over positions 1..ctx−1; M·S = gated curvature; intervals: 95 % BCa "
        "bootstrap of the mean over pairs. Written by benchmarks/curvature_agreement.py."
    )
    (args.out / "summary.md").write_text(summary(rows, header))
    print(summary(rows, header))
    return 0


if __name__ == "__main__":
    sys.exit(main())
