"""Sections 4 and 5 of ``heta-lens bench``: each curvature preset against full HETA (time and
memory against context length; score agreement over many prompts)."""

import math
from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from heta_lens.benchmark import (
    Report,
    fmt_s,
    full_memory_probe,
    growth_exponent,
    measure,
    timed_attribute,
    top_overlap,
)
from heta_lens.evals.metrics.rank import spearman
from heta_lens.presets import PRESETS
from heta_lens.targets import greedy_generate

SCALING_BUDGET: dict[str, int] = {
    "full": 128,
    "LS": 128,
    "LR": 64,
    "LR-global": 128,
    "row": 256,
    "WIN": 256,
}
"""Longest T each preset is timed at in section 4 (longer ones are extrapolated), chosen so the
whole benchmark fits in about 40 minutes on a 2-core machine."""


def section_scaling(
    report: Report,
    model: Any,
    text: str,
    *,
    lengths: Sequence[int],
    presets: Sequence[str],
    n_probes: int,
    max_len: dict[str, int],
) -> None:
    """4. Time and peak RSS against T per preset, growth exponent, agreement with full."""
    ids = model.to_tokens(text)[0]
    rows: list[list[str]] = []
    full_scores: dict[int, torch.Tensor] = {}
    for name in presets:
        config = PRESETS[name].with_probes(n_probes)
        times: list[tuple[int, float]] = []
        for length in tqdm(lengths, desc=f"scaling {name}", leave=False):
            tokens = ids[: length + 1]
            if length > max_len.get(name, 10**9):
                if name == "full":
                    _, mem = measure(lambda t=tokens, c=config: full_memory_probe(model, t, c))
                    rows.append(
                        [name, str(length), "(memory probe only)", f"{mem.peak_rss_mb:.0f}", "-"]
                    )
                continue
            result, t = timed_attribute(model, tokens, config)
            if name == "full":
                full_scores[length] = result.scores
            agree = "-"
            if name != "full" and length in full_scores:
                agree = f"{spearman(full_scores[length], result.scores):.3f}"
            times.append((length, t.seconds))
            rows.append([name, str(length), fmt_s(t.seconds), f"{t.peak_rss_mb:.0f}", agree])
        if len(times) >= 2:
            k = growth_exponent([n for n, _ in times], [sec for _, sec in times])
            rows.append([name, "fit", f"time ∝ T^{k:.2f}", "-", "-"])
            n0, s0 = times[-1]
            for length in lengths:
                if length > n0:
                    guess = fmt_s(s0 * (length / n0) ** k)
                    rows.append([name, str(length), f"≈ {guess} (extrapolated)", "-", "-"])
    report.add(
        "4. Scaling with context length",
        rows,
        ["preset", "T", "time", "peak RSS (MB)", "Spearman ρ vs full"],
        note=f"m = {n_probes} probe(s) for every preset; peak RSS is the process's resident set "
        "during the call (model weights, ~0.6 GB, included). Runs beyond a preset's time budget "
        "are extrapolated from the fitted exponent; for full HETA the peak-memory phase (one "
        "batched HVP chunk) is still measured there.",
    )


def section_quality(
    report: Report, model: Any, prompts: Sequence[str], *, presets: Sequence[str], n_probes: int
) -> None:
    """5. Agreement of each preset with full HETA over many prompts."""
    # WIN equals full whenever ctx <= W (tested), so short prompts say nothing about it.
    skip = {"full", "WIN"}
    stats: dict[str, list[tuple[float, float]]] = {n: [] for n in presets if n not in skip}
    lengths = []
    for prompt in tqdm(prompts, desc="quality prompts"):
        ids, positions = greedy_generate(model, prompt, max_new_tokens=1)
        lengths.append(positions[0])
        full, _ = timed_attribute(model, ids, PRESETS["full"].with_probes(n_probes))
        for name in stats:
            other, _ = timed_attribute(model, ids, PRESETS[name].with_probes(n_probes))
            stats[name].append(
                (spearman(full.scores, other.scores), top_overlap(full.scores, other.scores))
            )
    rows = []
    for name, values in stats.items():
        rho = [r for r, _ in values if not math.isnan(r)]
        rows.append(
            [
                name,
                f"{sum(rho) / len(rho):.3f}",
                f"{min(rho):.3f}",
                f"{sum(o for _, o in values) / len(values):.2f}",
            ]
        )
    report.add(
        f"5. Agreement with full HETA ({len(prompts)} prompts, ctx {min(lengths)}–{max(lengths)})",
        rows,
        ["preset", "mean Spearman ρ", "min ρ", "mean top-5 overlap"],
        note=f"Targets: the model's greedy next token; m = {n_probes} probes for every preset. "
        "WIN is left out: it equals full whenever ctx <= W (tested); section 4 compares it at "
        "long contexts.",
    )
