"""PNG figures of eval results: causal-trace heatmap, deletion curves, β/γ sweep, ablation bars.

matplotlib is the optional ``plot`` extra; it is imported inside each function (Agg backend,
no display needed) and a missing install raises an ImportError naming the extra.
"""

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from heta_lens.evals.metrics import Interval
from heta_lens.evals.tracing import CausalTrace


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError("plots need matplotlib: pip install 'heta-lens[plot]'") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return out


def plot_trace(trace: CausalTrace, path: str | Path, *, title: str = "") -> Path:
    """Heatmap of the normalised restoration effect, layers × context tokens."""
    plt = _pyplot()
    effect = trace.restoration.numpy()
    n_layers, ctx = effect.shape
    fig, ax = plt.subplots(figsize=(max(4.0, 0.32 * ctx + 1.5), max(3.0, 0.16 * n_layers + 1.2)))
    image = ax.imshow(effect, aspect="auto", cmap="Purples", origin="lower")
    labels = trace.str_tokens or [str(i) for i in range(ctx)]
    marks = set(trace.corrupt)
    ax.set_xticks(range(ctx), [f"{t!r}{'*' if i in marks else ''}" for i, t in enumerate(labels)])
    ax.tick_params(axis="x", labelrotation=90, labelsize=7)
    ax.set_ylabel("layer (resid_pre restored)")
    ax.set_title(title or f"causal trace → {trace.target_token!r} (* = noised)", fontsize=9)
    fig.colorbar(image, ax=ax, label="restored share of log P")
    return _save(fig, path)


def plot_deletion_curves(
    rows: Sequence[Mapping[str, Any]], fractions: Sequence[float], path: str | Path
) -> Path:
    """Mean P(target) after deleting the top-f fraction, one line per method."""
    plt = _pyplot()
    curves: dict[str, list[list[float]]] = defaultdict(list)
    for row in rows:
        if row.get("curves", {}).get("deletion"):
            curves[row["method"]].append(row["curves"]["deletion"])
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    p0 = _p0(rows)
    for method, values in curves.items():
        mean = [sum(col) / len(col) for col in zip(*values, strict=True)]
        ax.plot([0.0, *fractions], [p0, *mean], marker="o", ms=3, label=method)
    ax.set_xlabel("fraction of context deleted (highest scores first)")
    ax.set_ylabel("mean P(target)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def _p0(rows: Sequence[Mapping[str, Any]]) -> float:
    """Mean unperturbed P(target) over the run's targets (the same for every method)."""
    log_p = {
        (r["uid"], r["target"]): r["target_log_prob"]
        for r in rows
        if r.get("target_log_prob") is not None
    }
    values = [math.exp(v) for v in log_p.values()]
    return sum(values) / len(values) if values else float("nan")


def plot_sweep(
    betas: Sequence[float], values: Mapping[str, Sequence[Interval]], path: str | Path
) -> Path:
    """One panel per metric: mean and 95% interval against β (γ = 1 − β)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(values), figsize=(3.2 * len(values), 3.0), squeeze=False)
    for ax, (metric, intervals) in zip(axes[0], values.items(), strict=True):
        means = [i.mean for i in intervals]
        low = [i.mean - i.low for i in intervals]
        high = [i.high - i.mean for i in intervals]
        ax.errorbar(betas, means, yerr=[low, high], marker="o", capsize=3)
        ax.set_xlabel("β (γ = 1 − β)")
        ax.set_title(metric, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_bars(values: Mapping[str, Mapping[str, Interval]], path: str | Path) -> Path:
    """Grouped bars with 95% intervals: one panel per metric, one bar per method."""
    plt = _pyplot()
    metrics = list(next(iter(values.values())).keys()) if values else []
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics), 3.2), squeeze=False)
    methods = list(values)
    for ax, metric in zip(axes[0], metrics, strict=True):
        intervals = [values[m][metric] for m in methods]
        ax.bar(
            range(len(methods)),
            [i.mean for i in intervals],
            yerr=[[i.mean - i.low for i in intervals], [i.high - i.mean for i in intervals]],
            capsize=3,
            color="#7b5ea7",
        )
        ax.set_xticks(range(len(methods)), methods, rotation=60, ha="right", fontsize=7)
        ax.set_title(metric, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
