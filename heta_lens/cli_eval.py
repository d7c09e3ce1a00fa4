"""``heta-lens eval``: run the faithfulness/alignment evals and print the summary table."""

import argparse
import functools
import sys
import time
from pathlib import Path
from typing import Any

from heta_lens.evals.compare import paired_section
from heta_lens.evals.datasets import (
    EvalInstance,
    load_curated,
    load_longra,
    load_rephrasing,
    load_sequence,
)
from heta_lens.evals.decoding import decoding_grid, decoding_instances, invariance_table
from heta_lens.evals.methods import beta_sweep
from heta_lens.evals.reports import rephrasing_table, write_plots
from heta_lens.evals.runner import check_methods, run_eval
from heta_lens.evals.settings import DEFAULT_METRICS, METRIC_GROUPS, EvalSettings
from heta_lens.evals.summary import csv_table, markdown_table, summarize
from heta_lens.models import default_data_dir, load_model
from heta_lens.presets import PRESETS
from heta_lens.registry import list_methods

DATASETS = ("longra", "tellmewhy", "wikitext", "curated", "rephrasing")
SUITES: dict[str, tuple[str, tuple[str, ...]]] = {
    # suite -> (default dataset, default metric groups)
    "causal": ("longra", ("causal",)),
    "robustness": ("rephrasing", ("sensitivity",)),
    "decoding": ("tellmewhy", ("soft", "hard")),
}
DEFAULT_METHODS = "heta,integrated_gradients,attention_rollout,occlusion"


def add_eval_parser(sub: Any) -> None:
    """Register the ``eval`` subcommand on the CLI's subparsers."""
    ev = sub.add_parser(
        "eval",
        help="faithfulness/alignment evals (Soft-NS/NC, hard top-k KL, AOPC, DSA, F1)",
        description=(
            "Evaluate attribution methods on a dataset; rows are written to OUT/rows*.jsonl as "
            "they are computed (a rerun resumes), the summary to OUT/summary.{md,csv}."
        ),
    )
    ev.add_argument(
        "dataset",
        choices=[*DATASETS, *SUITES],
        help="a dataset, or a suite: 'causal' (Patch-Corr, Intervention@5, misattribution; "
        "default on longra) or 'robustness' (sensitivity, and rephrasing ρ on the "
        "active/passive pairs) or 'decoding' (metric invariance over the sampling grid; "
        "default on tellmewhy)",
    )
    ev.add_argument("--on", choices=DATASETS, default=None, help="dataset of a suite")
    ev.add_argument("--model", default="smollm2-135m", help="model name, .gguf or HF dir")
    ev.add_argument("--backend", choices=["bridge", "hooked"], default="bridge")
    ev.add_argument(
        "--methods",
        default=DEFAULT_METHODS,
        help=f"comma-separated registry names or 'all' (default: {DEFAULT_METHODS})",
    )
    ev.add_argument("--limit", type=int, default=None, help="first N instances only")
    ev.add_argument("--out", type=Path, default=None, help="output dir (default eval-results/…)")
    ev.add_argument(
        "--data-dir", type=Path, default=None, help=f"data root (default {default_data_dir()})"
    )
    ev.add_argument(
        "--data",
        type=Path,
        default=None,
        help="curated: any JSONL file in the curated schema (docs/curated_schema.md)",
    )
    ev.add_argument(
        "--top-k",
        type=int,
        default=10,
        help="curated: keep instances whose answer token the model ranks in its top k",
    )
    ev.add_argument("--n-draws", type=int, default=4, help="mask draws per Soft-NS/NC score")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument(
        "--metrics",
        default=None,
        help=f"subset of {','.join(METRIC_GROUPS)} (default {','.join(DEFAULT_METRICS)}; "
        "causal suite: causal; robustness suite: sensitivity)",
    )
    ev.add_argument(
        "--heta-preset",
        choices=list(PRESETS),
        default="fast",
        help="curvature preset for every HETA-family method (default fast = row estimator, "
        "8 probes: Spearman 0.989 with full eq. 3 in benchmarks/RESULTS.md; 'full' is eq. 3)",
    )
    ev.add_argument("--n-probes", type=int, default=None, help="Hutchinson probes (HETA family)")
    ev.add_argument(
        "--mask",
        default="zero",
        help="how hard-top-k and AOPC remove a token: zero | mean | token:<id> (default zero)",
    )
    ev.add_argument(
        "--beta-sweep",
        action="store_true",
        help="add the β/γ sweep heta@beta=B (B in 0, .2, .8, 1; γ = 1 − β) to --methods",
    )
    ev.add_argument(
        "--corruption",
        default="noise",
        help="causal intervention: noise (Meng et al., 3σ) | zero | mean | token:<id>",
    )
    ev.add_argument("--causal-draws", type=int, default=4, help="noise draws per causal effect")
    ev.add_argument(
        "--sensitivity-delta", type=float, default=0.05, help="relative embedding noise δ"
    )
    ev.add_argument(
        "--sensitivity-draws", type=int, default=3, help="noisy reruns per method (≥ 2)"
    )
    ev.add_argument(
        "--grid",
        choices=["full", "small"],
        default="full",
        help="decoding suite: the paper's 162-point grid, or 9 points (temperature × top-p)",
    )
    ev.add_argument(
        "--no-plots", action="store_true", help="do not write PNG figures next to the summary"
    )
    ev.add_argument("--workers", type=int, default=1, help="processes (each loads the model)")
    ev.add_argument("--threads", type=int, default=None, help="torch threads (1 worker)")


def load_instances(dataset: str, model: Any, args: argparse.Namespace) -> list[EvalInstance]:
    """The dataset's instances for ``model`` (cached by the loaders)."""
    if dataset == "longra":
        return load_longra(model, data_dir=args.data_dir, limit=args.limit)
    if dataset in ("tellmewhy", "wikitext"):
        return load_sequence(model, dataset, data_dir=args.data_dir, limit=args.limit)
    if dataset == "rephrasing":
        return load_rephrasing(model, path=args.data, limit=args.limit)
    return load_curated(
        model, data_path=args.data, data_dir=args.data_dir, limit=args.limit, top_k=args.top_k
    )


def cmd_eval(args: argparse.Namespace) -> int:
    """Run ``heta-lens eval``."""
    import torch

    start = time.perf_counter()
    suite = args.dataset if args.dataset in SUITES else None
    dataset = args.on or (SUITES[suite][0] if suite else args.dataset)
    if args.on and not suite:
        raise ValueError("--on selects the dataset of a suite (causal, robustness)")
    methods = (
        list_methods()
        if args.methods == "all"
        else [m.strip() for m in args.methods.split(",") if m.strip()]
    )
    if args.beta_sweep:
        methods += [m for m in beta_sweep() if m not in methods]
    check_methods(methods)
    metric_groups = (
        tuple(m.strip() for m in args.metrics.split(",") if m.strip())
        if args.metrics is not None
        else (SUITES[suite][1] if suite else DEFAULT_METRICS)
    )
    overrides = () if args.n_probes is None else (("n_probes", args.n_probes),)
    settings = EvalSettings(
        dataset=dataset,
        model=args.model,
        n_draws=args.n_draws,
        seed=args.seed,
        metrics=metric_groups,
        heta_preset=args.heta_preset,
        heta_overrides=overrides,
        mask=args.mask,
        corruption=args.corruption,
        causal_draws=args.causal_draws,
        sensitivity_delta=args.sensitivity_delta,
        sensitivity_draws=args.sensitivity_draws,
    )
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    loader = functools.partial(load_model, args.model, backend=args.backend)
    model = loader()
    instances = load_instances(dataset, model, args)
    if suite == "decoding":
        if dataset not in ("tellmewhy", "wikitext"):
            raise ValueError("the decoding suite runs on a sequence dataset: tellmewhy, wikitext")
        instances = decoding_instances(model, instances, decoding_grid(args.grid))
    name = f"{suite}-{dataset}" if suite else dataset
    out = args.out or Path("eval-results") / f"{name}-{Path(args.model).stem}"
    print(
        f"{name}: {len(instances)} instances, "
        f"{sum(len(i.targets) for i in instances)} targets -> {out}",
        file=sys.stderr,
    )
    rows = run_eval(
        loader,
        instances,
        methods=methods,
        settings=settings,
        out=out,
        workers=args.workers,
        model=model,
    )
    wanted = {(i.uid, t) for i in instances for t in i.targets}
    rows = [
        r
        for r in rows
        if (r["uid"], r["target"]) in wanted and (r["method"] in methods or r["method"] == "random")
    ]
    summaries = summarize(rows, seed=args.seed)
    header = (
        f"dataset {dataset}, model {args.model}, {len(instances)} instances, "
        f"metrics {','.join(metric_groups)}, n_draws {args.n_draws}, "
        f"HETA preset {args.heta_preset or 'registry default'}\n\n"
    )
    if dataset == "wikitext":
        header += "wikitext prompts stand in for WikiBio (not available offline).\n\n"
    body = markdown_table(summaries) + paired_section(rows, seed=args.seed)
    if dataset == "rephrasing":
        body += "\n" + rephrasing_table(rows, instances, seed=args.seed)
    if suite == "decoding":
        body += f"\nDecoding grid '{args.grid}': mean over prompts per grid point vs greedy\n\n"
        body += invariance_table(rows, instances)
    (out / "summary.csv").write_text(csv_table(summaries))
    (out / "summary.md").write_text(header + body)
    print(header + body)
    if not args.no_plots:
        for path in write_plots(
            model, rows, instances, settings=settings, out=out, trace=suite == "causal"
        ):
            print(f"wrote {path}", file=sys.stderr)
    print(
        f"done in {time.perf_counter() - start:.1f} s; wrote {out}/summary.md, summary.csv",
        file=sys.stderr,
    )
    return 0
