"""What ``heta-lens eval`` writes after the summary table: rephrasing ρ, figures, a trace."""

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from heta_lens.evals.convergence import labelled, unconverged
from heta_lens.evals.datasets import EvalInstance
from heta_lens.evals.datasets.rephrasing import rephrasing_rho
from heta_lens.evals.evaluate import RANDOM
from heta_lens.evals.methods import is_heta_family, resolve_method
from heta_lens.evals.metrics import Interval, bootstrap_ci
from heta_lens.evals.settings import EvalSettings
from heta_lens.evals.summary import LOG_RATIO_METRICS, header, mean_metrics, summarize
from heta_lens.evals.tracing import causal_trace


def rephrasing_by_method(
    rows: Sequence[dict[str, Any]], instances: Sequence[EvalInstance], *, seed: int = 0
) -> dict[str, Interval]:
    """Method → mean rephrasing ρ over pairs with its 95% bootstrap interval.

    Pairs whose ρ is undefined (constant word scores in one form) are dropped and counted in
    ``Interval.n_dropped``.
    """
    by_uid = {i.uid: i for i in instances}
    scores = {(r["uid"], r["method"]): r["scores"] for r in rows}
    methods = list(dict.fromkeys(r["method"] for r in rows))
    pairs = sorted({str(i.meta["pair"]) for i in instances if "pair" in i.meta})
    out = {}
    for method in methods:
        values = []
        for pair in pairs:
            a, p = f"{pair}/active", f"{pair}/passive"
            if (a, method) in scores and (p, method) in scores:
                values.append(
                    rephrasing_rho(by_uid[a], scores[(a, method)], by_uid[p], scores[(p, method)])
                )
        if values:
            out[method] = bootstrap_ci(values, seed=seed)
    return out


def rephrasing_table(
    rows: Sequence[dict[str, Any]], instances: Sequence[EvalInstance], *, seed: int = 0
) -> str:
    """Markdown table of :func:`rephrasing_by_method` (unconverged methods labelled)."""
    stalled = unconverged(rows)
    lines = [
        "| method | pairs | rephrasing ρ (mean [95% CI]) |",
        "|---|---|---|",
    ]
    for method, iv in rephrasing_by_method(rows, instances, seed=seed).items():
        cell = f"{iv.mean:.3f} [{iv.low:.3f}, {iv.high:.3f}]"
        lines.append(f"| {labelled(method, stalled)} | {iv.n} | {cell} |")
    return "\n".join(lines) + "\n"


def figure_values(
    rows: Sequence[dict[str, Any]], instances: Sequence[EvalInstance], *, seed: int
) -> dict[str, dict[str, Interval]]:
    """Method → metric header → 95% interval, for the ablation and sweep figures.

    Every summarised metric of the run: the Soft-NS/NC ln-ratios first (the faithfulness
    metrics of the paper), then the per-target means (the causal metrics of every site), then
    rephrasing ρ when the run has
    active/passive pairs. Same numbers as the summary table (same bootstrap seed).
    """
    summaries = summarize(rows, seed=seed)
    plotted = (*LOG_RATIO_METRICS, *mean_metrics({k for s in summaries for k in s.values}))
    table = {
        summary.method: {header(k): summary.values[k] for k in plotted if k in summary.values}
        for summary in summaries
    }
    for method, interval in rephrasing_by_method(rows, instances, seed=seed).items():
        table[method]["rephrasing ρ"] = interval
    return table


def write_plots(
    model: nn.Module,
    rows: Sequence[dict[str, Any]],
    instances: Sequence[EvalInstance],
    *,
    settings: EvalSettings,
    out: Path,
    trace: bool = False,
) -> list[Path]:
    """Figures of a finished run, as PNG in ``out`` (needs the ``plot`` extra).

    ``deletion.png`` (AOPC deletion curves), ``ablations.png`` (HETA-family bars, when two or
    more family members ran), ``sweep.png`` (β/γ sweep, when ``@beta`` variants ran) and, with
    ``trace``, ``trace.png``/``trace.json`` (causal trace of the first instance's first target).
    """
    from heta_lens.evals import plots

    written: list[Path] = []
    if "aopc" in settings.metrics and rows:
        written.append(
            plots.plot_deletion_curves(rows, settings.aopc_fractions, out / "deletion.png")
        )
    table = figure_values(rows, instances, seed=settings.seed)

    def common(methods: Sequence[str]) -> list[str]:
        keys = dict.fromkeys(k for m in methods for k in table[m])
        return [k for k in keys if all(k in table[m] for m in methods)]

    family = [m for m in table if m != RANDOM and "@" not in m and is_heta_family(m)]
    if len(family) >= 2 and common(family):
        bars = {m: {k: table[m][k] for k in common(family)} for m in family}
        written.append(plots.plot_bars(bars, out / "ablations.png"))
    sweep = sorted(
        (resolve_method(m)[1].beta, m)
        for m in table
        if m != RANDOM and is_heta_family(m) and (m == "heta" or m.startswith("heta@"))
    )
    names = [m for _, m in sweep]
    if len(sweep) >= 3 and common(names):
        values = {k: [table[m][k] for m in names] for k in common(names)}
        written.append(plots.plot_sweep([b for b, _ in sweep], values, out / "sweep.png"))
    if trace and instances:
        instance = instances[0]
        result = causal_trace(
            model,
            torch.tensor(instance.tokens),
            target=instance.targets[0],
            noise_scale=settings.noise_scale,
            generator=torch.Generator().manual_seed(settings.seed),
        )
        title = f"{instance.uid}: causal trace → {result.target_token!r} (* = noised)"
        written.append(plots.plot_trace(result, out / "trace.png", title=title))
        (out / "trace.json").write_text(
            json.dumps(
                {
                    "uid": instance.uid,
                    "target": instance.targets[0],
                    "str_tokens": result.str_tokens,
                    "corrupt": list(result.corrupt),
                    "log_p_clean": result.log_p_clean,
                    "log_p_corrupted": result.log_p_corrupted,
                    "log_p": result.log_p.tolist(),
                }
            )
        )
        written.append(out / "trace.json")
    return written
