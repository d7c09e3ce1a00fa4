"""The six sections of ``heta-lens bench`` (see :mod:`heta_lens.benchmark`)."""

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from heta_lens.benchmark import (
    Report,
    fmt_ratio,
    fmt_s,
    full_memory_probe,
    growth_exponent,
    long_text,
    machine_description,
    measure,
    occlusion_captum,
    sequential_curvature,
    sequential_information,
    timed_attribute,
    top_overlap,
)
from heta_lens.curvature.probes import rademacher_probes
from heta_lens.evals.metrics import (
    aopc_curves,
    hard_topk_kl,
    perturbation_metrics,
    soft_scores,
)
from heta_lens.evals.metrics.rank import spearman
from heta_lens.evals.settings import EvalSettings
from heta_lens.gate import gate_from_capture
from heta_lens.hooks import ModelAdapter, preserved_model_state
from heta_lens.information import information_gain
from heta_lens.inputs import prepare
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


def section_sequential(report: Report, model: Any, tokens: torch.Tensor, *, n_probes: int) -> None:
    """1. Batched full HETA vs the official sequential loop, same probes."""
    config = PRESETS["full"].with_probes(n_probes)
    ours, t_ours = timed_attribute(model, tokens, config)
    adapter = ModelAdapter(model)
    req = prepare(adapter, tokens, None)
    probes = rademacher_probes(
        n_probes,
        int(req.prefix.numel()),
        adapter.d_model,
        generator=torch.Generator().manual_seed(config.seed),
        dtype=adapter.dtype,
    )

    def sequential() -> tuple[torch.Tensor, torch.Tensor]:
        with preserved_model_state(model):
            gate_from_capture(adapter.capture_attention(req.prefix))
            return (
                sequential_curvature(adapter, req, probes),
                sequential_information(adapter, req, config.information.mask),
            )

    (s_seq, i_seq), t_seq = measure(sequential)
    d_s = float(((ours.curvature - s_seq).abs() / s_seq.abs().clamp_min(1e-12)).max())
    d_i = float((ours.information - i_seq).abs().max())
    report.add(
        "1. Full HETA vs the official sequential loop (same probes)",
        [
            [
                f"{int(req.prefix.numel())}",
                str(n_probes),
                fmt_s(t_ours.seconds),
                fmt_s(t_seq.seconds),
                fmt_ratio(t_seq.seconds / t_ours.seconds),
                f"{d_s:.1e}",
                f"{d_i:.1e}",
            ]
        ],
        ["ctx", "m", "heta-lens full", "sequential loop", "speed-up", "max rel Δ S", "max |Δ I|"],
        note="Sequential = one forward + backward + double backward per (token, probe) and one "
        "masked forward per token, as in the official implementation.",
    )


def section_occlusion(
    report: Report, model: Any, tokens: torch.Tensor, *, presets: Sequence[str]
) -> None:
    """2. Each preset vs Captum FeatureAblation leave-one-out on the same prompt."""
    _, t_occ = measure(lambda: occlusion_captum(model, tokens))
    rows = [["occlusion (Captum FeatureAblation)", fmt_s(t_occ.seconds), "1.00×"]]
    for name in presets:
        _, t = timed_attribute(model, tokens, PRESETS[name])
        rows.append([name, fmt_s(t.seconds), fmt_ratio(t.seconds / t_occ.seconds)])
    ctx = int(tokens.numel()) - 1
    report.add(
        f"2. Cost relative to leave-one-out occlusion (ctx = {ctx})",
        rows,
        ["method", "time", "ratio to occlusion"],
    )


def section_masked_kl(report: Report, model: Any, tokens: torch.Tensor) -> None:
    """3. The masked-KL term vs T independent masked forwards."""
    adapter = ModelAdapter(model)
    req = prepare(adapter, tokens, None)

    def independent() -> torch.Tensor:
        with preserved_model_state(model):
            return sequential_information(adapter, req, "zero")

    reference, t_ind = measure(independent)
    rows = [["T independent forwards", fmt_s(t_ind.seconds), "1.00×", "0"]]
    for strategy in ("batched", "prefix"):
        kwargs: dict[str, Any] = {"strategy": strategy}
        values, t = measure(lambda kw=kwargs: information_gain(model, tokens, **kw))
        rows.append(
            [
                f"information_gain ({strategy or 'batched'})",
                fmt_s(t.seconds),
                fmt_ratio(t.seconds / t_ind.seconds),
                f"{float((values - reference).abs().max()):.1e}",
            ]
        )
    report.add(
        f"3. Masked-KL term (ctx = {int(req.prefix.numel())})",
        rows,
        ["computation", "time", "ratio", "max |Δ|"],
    )


def section_eval_metrics(report: Report, model: Any, tokens: torch.Tensor) -> None:
    """6. The eval's Soft / hard-top-k / AOPC metrics: three calls vs one shared forward."""
    settings = EvalSettings(dataset="bench", model="bench")
    target = int(tokens.numel()) - 1
    scores = torch.rand(target, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def separate() -> list[float]:
        gen = torch.Generator().manual_seed(1)
        soft = soft_scores(
            model, tokens, target=target, scores=scores, n_draws=settings.n_draws, generator=gen
        )
        hard = hard_topk_kl(model, tokens, target=target, scores=scores)
        aopc = aopc_curves(model, tokens, target=target, scores=scores)
        return [soft.soft_ns, soft.soft_nc, hard.nc, hard.ns, *aopc.p_deletion, *aopc.p_insertion]

    def shared() -> list[float]:
        res = perturbation_metrics(
            model,
            tokens,
            target=target,
            scores=scores,
            n_draws=settings.n_draws,
            generator=torch.Generator().manual_seed(1),
            hard_fractions=settings.hard_fractions,
            aopc_fractions=settings.aopc_fractions,
        )
        assert res.soft is not None and res.hard is not None and res.aopc is not None
        soft, hard, aopc = res.soft, res.hard, res.aopc
        return [soft.soft_ns, soft.soft_nc, hard.nc, hard.ns, *aopc.p_deletion, *aopc.p_insertion]

    shared()  # warm-up: first-call allocations are not charged to either side
    reference, t_sep = measure(separate)
    values, t_shared = measure(shared)
    delta = max(abs(a - b) for a, b in zip(values, reference, strict=True))
    report.add(
        f"6. Eval perturbation metrics per method and target (ctx = {target}, eval defaults)",
        [
            ["soft_scores + hard_topk_kl + aopc_curves", fmt_s(t_sep.seconds), "1.00×", "0"],
            [
                "perturbation_metrics (one shared forward)",
                fmt_s(t_shared.seconds),
                fmt_ratio(t_shared.seconds / t_sep.seconds),
                f"{delta:.1e}",
            ],
        ],
        ["computation", "time", "ratio", "max |Δ| (metrics, AOPC p)"],
    )


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


def run_benchmark(
    model: Any,
    *,
    data_dir: Path,
    model_name: str,
    sections: Sequence[int],
    lengths: Sequence[int],
    n_prompts: int,
    out: Path | None,
    emit: Callable[[str], None] | None = None,
) -> str:
    """Run the requested sections; ``emit`` each table as it completes and rewrite ``out``
    after each section (an interrupted run keeps what it measured). Returns the markdown."""
    report = Report(title=f"heta-lens benchmark — {model_name}")
    report.sections.append(f"Machine: {machine_description()}\n")
    text = long_text(data_dir)
    prompt64 = model.to_tokens(text)[0][:65]
    presets = list(PRESETS)
    steps = {
        1: lambda: section_sequential(report, model, prompt64, n_probes=2),
        2: lambda: section_occlusion(report, model, prompt64, presets=presets),
        3: lambda: section_masked_kl(report, model, prompt64),
        4: lambda: section_scaling(
            report,
            model,
            text,
            lengths=lengths,
            presets=presets,
            n_probes=1,
            max_len=dict(SCALING_BUDGET),
        ),
        5: lambda: section_quality(
            report, model, _prompts(data_dir, n_prompts), presets=presets, n_probes=4
        ),
        6: lambda: section_eval_metrics(report, model, prompt64),
    }
    for number in sections:
        steps[number]()
        if emit is not None:
            emit(report.sections[-1])
        if out is not None:
            out.write_text(report.markdown())
    return report.markdown()


def _prompts(data_dir: Path, n: int) -> list[str]:
    from heta_lens.benchmark import load_prompts

    return load_prompts(data_dir, n=n)
