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
    for k, (method, values) in enumerate(curves.items()):
        mean = [sum(col) / len(col) for col in zip(*values, strict=True)]
        color, linestyle, marker = line_style(k)
        ax.plot(
            [0.0, *fractions],
            [p0, *mean],
            color=color,
            linestyle=linestyle,
            marker=marker,
            ms=3,
            label=method,
        )
    ax.set_xlabel("fraction of context deleted (highest scores first)")
    ax.set_ylabel("mean P(target)")
    if len(curves) > 6:  # beside the axes: inside, a long legend hides the curves
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    else:
        ax.legend(fontsize=7)
    return _save(fig, path)


_LINESTYLES = ("-", "--", ":")
_MARKERS = ("o", "s", "^")


def line_style(k: int) -> tuple[str, str, str]:
    """(color, linestyle, marker) of the k-th line: distinct for the first 30 lines.

    The 10 colours of matplotlib's default cycle, then again dashed with squares, then dotted
    with triangles (a run with every registered method draws 17 lines).
    """
    group = (k // 10) % len(_LINESTYLES)
    return f"C{k % 10}", _LINESTYLES[group], _MARKERS[group]


def _p0(rows: Sequence[Mapping[str, Any]]) -> float:
    """Mean unperturbed P(target) over the run's targets (the same for every method)."""
    log_p = {
        (r["uid"], r["target"]): r["target_log_prob"]
        for r in rows
        if r.get("target_log_prob") is not None
    }
    values = [math.exp(v) for v in log_p.values()]
    return sum(values) / len(values) if values else float("nan")


_MAX_COLUMNS = 5


def _panels(n: int, *, width: float, height: float) -> tuple[Any, list[Any]]:
    """A figure with ``n`` panels in rows of at most five; unused grid cells are hidden."""
    plt = _pyplot()
    cols = max(1, min(n, _MAX_COLUMNS))
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def error_bars(
    intervals: Sequence[Interval],
) -> tuple[list[float], list[list[float]]]:
    """Means and ``[below, above]`` error lengths for matplotlib, safe for unbounded intervals.

    A non-finite mean becomes NaN (matplotlib leaves the point out); a non-finite bound (an
    ln-ratio interval whose bootstrap resamples hit a zero mean) gets no bar on that side
    rather than an infinite one.
    """
    means = [i.mean if math.isfinite(i.mean) else math.nan for i in intervals]

    def length(bound: float, mean: float) -> float:
        return abs(mean - bound) if math.isfinite(bound) and math.isfinite(mean) else 0.0

    below = [length(i.low, m) for i, m in zip(intervals, means, strict=True)]
    above = [length(i.high, m) for i, m in zip(intervals, means, strict=True)]
    return means, [below, above]


def plot_sweep(
    betas: Sequence[float], values: Mapping[str, Sequence[Interval]], path: str | Path
) -> Path:
    """One panel per metric: mean and 95% interval against β (γ = 1 − β)."""
    fig, axes = _panels(len(values), width=3.2, height=3.0)
    for ax, (metric, intervals) in zip(axes, values.items(), strict=True):
        means, yerr = error_bars(intervals)
        ax.errorbar(betas, means, yerr=yerr, marker="o", capsize=3)
        ax.set_xlabel("β (γ = 1 − β)")
        ax.set_title(metric, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_bars(values: Mapping[str, Mapping[str, Interval]], path: str | Path) -> Path:
    """Grouped bars with 95% intervals: one panel per metric, one bar per method."""
    metrics = list(next(iter(values.values())).keys()) if values else []
    fig, axes = _panels(len(metrics), width=3.4, height=3.4)
    methods = list(values)
    for ax, metric in zip(axes, metrics, strict=True):
        means, yerr = error_bars([values[m][metric] for m in methods])
        ax.bar(range(len(methods)), means, yerr=yerr, capsize=3, color="#7b5ea7")
        ax.set_xticks(range(len(methods)), methods, rotation=60, ha="right", fontsize=7)
        ax.set_title(metric, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
