"""The sections of ``heta-lens bench`` (see :mod:`heta_lens.benchmark`); 4 and 5 are in
:mod:`heta_lens.benchmark_presets`."""

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from heta_lens.benchmark import (
    Report,
    fmt_ratio,
    fmt_s,
    long_text,
    machine_description,
    measure,
    occlusion_captum,
    sequential_curvature,
    sequential_information,
    timed_attribute,
)
from heta_lens.benchmark_presets import SCALING_BUDGET, section_quality, section_scaling
from heta_lens.curvature.probes import rademacher_probes
from heta_lens.evals.metrics import (
    aopc_curves,
    hard_topk_kl,
    perturbation_metrics,
    soft_scores,
)
from heta_lens.evals.settings import EvalSettings
from heta_lens.gate import gate_from_capture
from heta_lens.hooks import ModelAdapter, preserved_model_state
from heta_lens.information import information_gain
from heta_lens.inputs import prepare
from heta_lens.presets import PRESETS


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
