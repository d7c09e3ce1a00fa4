"""``run_suite``: one eval run as a library call (what ``heta-lens eval`` runs and prints).

One :class:`~heta_lens.evals.suite_settings.SuiteSettings` in, one :class:`Report` out: the suite's
dataset is loaded for the model (:func:`load_instances`; the decoding suite adds its sampled
continuations), the methods are evaluated by the resumable runner
(:func:`~heta_lens.evals.runner.run_eval`: rows appended to ``OUT/rows*.jsonl`` as they are
computed, a rerun resumes), the rows of this run's instances and methods are summarised
(:func:`summary_text`), and ``OUT/summary.md``, ``OUT/summary.csv`` and the figures are
written. The CLI, the tutorials and the scripts call these functions; none prints.
"""

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from heta_lens.cluster import import_ray
from heta_lens.evals.compare import paired_section
from heta_lens.evals.datasets import (
    DEFAULT_CURATED_FILTER,
    EvalInstance,
    filter_top_k,
    load_curated,
    load_longra,
    load_rephrasing,
    load_sequence,
)
from heta_lens.evals.decoding import decoding_grid, decoding_instances, invariance_table
from heta_lens.evals.evaluate import RANDOM
from heta_lens.evals.methods import beta_sweep
from heta_lens.evals.reports import rephrasing_table, write_plots
from heta_lens.evals.runner import ModelLoader, check_methods, run_eval
from heta_lens.evals.settings import EvalSettings
from heta_lens.evals.suite_settings import SuiteSettings
from heta_lens.evals.summary import MethodSummary, csv_table, markdown_table, summarize
from heta_lens.models import load_model
from heta_lens.registry import list_methods

Log = Callable[[str], object]
"""Receives one progress line (the CLI prints it to stderr)."""


@dataclass(frozen=True, kw_only=True)
class Report:
    """What an eval run (or a stored run read back) amounts to.

    Attributes:
        name: The run's name (``<suite>-<dataset>`` or ``<dataset>``, or the run folder's).
        settings: The settings that fixed the numbers (as in ``run.json``).
        methods: The evaluated methods (the random baseline not listed).
        instances: The dataset instances (empty for a stored run read back).
        rows: The rows summarised: this run's instances, targets and methods, plus random.
        summaries: One :class:`~heta_lens.evals.summary.MethodSummary` per method.
        header: The lines above the tables (dataset, model, settings).
        body: The tables: summary, paired comparisons, suite sections.
        out: The run directory.
        paths: Files written (``summary.md``, ``summary.csv``, figures).
    """

    name: str
    settings: EvalSettings
    methods: tuple[str, ...]
    instances: tuple[EvalInstance, ...]
    rows: tuple[dict[str, Any], ...]
    summaries: tuple[MethodSummary, ...]
    header: str
    body: str
    out: Path
    paths: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        stray = {r["method"] for r in self.rows} - {*self.methods, RANDOM}
        if stray:
            raise ValueError(f"rows of methods {sorted(stray)} not among {list(self.methods)}")

    @property
    def text(self) -> str:
        """``header + body``: what ``summary.md`` holds and ``heta-lens eval`` prints."""
        return self.header + self.body

    @property
    def n_instances(self) -> int:
        """Instances with at least one summarised row."""
        return len({r["uid"] for r in self.rows})


def load_instances(
    dataset: str,
    model: nn.Module,
    *,
    data_dir: Path | None = None,
    data: Path | None = None,
    limit: int | None = None,
    curated_filter: str = DEFAULT_CURATED_FILTER,
    progress: bool = True,
) -> list[EvalInstance]:
    """The instances of ``dataset`` for ``model`` (cached by the loaders).

    Args:
        dataset: A name of :data:`~heta_lens.evals.suite_settings.DATASETS`.
        model: The evaluated model (the loaders tokenize and filter with it).
        data_dir: Data root (default: :func:`heta_lens.models.default_data_dir`).
        data: Curated: a JSONL file in the curated schema; rephrasing: a pairs file.
        limit: The first ``limit`` instances only.
        curated_filter: Curated: the answer-rank filter, ``top<k>`` (``top10``, ``top1``;
            :func:`~heta_lens.evals.datasets.curated.filter_top_k`).
        progress: Show the loaders' progress bars.

    Raises:
        ValueError: An unknown dataset or a loader's refusal (e.g. no survivors).
    """
    if dataset == "longra":
        return load_longra(model, data_dir=data_dir, limit=limit, progress=progress)
    if dataset in ("tellmewhy", "wikitext"):
        return load_sequence(model, dataset, data_dir=data_dir, limit=limit, progress=progress)
    if dataset == "rephrasing":
        return load_rephrasing(model, path=data, limit=limit)
    if dataset == "curated":
        return load_curated(
            model,
            data_path=data,
            data_dir=data_dir,
            limit=limit,
            top_k=filter_top_k(curated_filter),
            progress=progress,
        )
    raise ValueError(f"unknown dataset {dataset!r}")


def suite_instances(
    model: nn.Module, settings: SuiteSettings, *, progress: bool = True
) -> list[EvalInstance]:
    """The instances a run of ``settings`` evaluates (the decoding suite adds its samples)."""
    instances = load_instances(
        settings.dataset_name,
        model,
        data_dir=settings.data_dir,
        data=settings.data,
        limit=settings.limit,
        curated_filter=settings.curated_filter,
        progress=progress,
    )
    if settings.suite == "decoding":
        instances = decoding_instances(model, instances, decoding_grid(settings.grid))
    return instances


def suite_methods(settings: SuiteSettings) -> list[str]:
    """The method names of ``settings`` (``all`` expanded, the β sweep added), validated."""
    names = settings.method_names
    methods = list_methods() if names == ("all",) else list(names)
    if settings.beta_sweep:
        methods += [m for m in beta_sweep() if m not in methods]
    return check_methods(methods)


def select_rows(
    rows: Sequence[dict[str, Any]], instances: Sequence[EvalInstance], methods: Sequence[str]
) -> list[dict[str, Any]]:
    """The rows of ``instances``' targets and of ``methods`` or the random baseline.

    A run directory can hold more (an earlier run with a larger ``limit`` or more methods);
    the report covers what was asked for.
    """
    wanted = {(i.uid, t) for i in instances for t in i.targets}
    keep = {*methods, RANDOM}
    return [r for r in rows if (r["uid"], r["target"]) in wanted and r["method"] in keep]


def summary_text(
    rows: Sequence[dict[str, Any]],
    instances: Sequence[EvalInstance],
    settings: SuiteSettings,
    summaries: Sequence[MethodSummary],
) -> tuple[str, str]:
    """The header and body of ``summary.md``: the summary table, the paired comparisons with
    HETA and the suite's sections (rephrasing ρ, decoding invariance)."""
    eval_settings = settings.eval_settings()
    dataset = settings.dataset_name
    kept = f" (answer filter {settings.curated_filter})" if dataset == "curated" else ""
    header = (
        f"dataset {dataset}, model {settings.model}, {len(instances)} instances{kept}, "
        f"metrics {','.join(eval_settings.metrics)}, n_draws {settings.n_draws}, "
        f"HETA preset {settings.heta_preset or 'registry default'}\n\n"
    )
    if dataset == "wikitext":
        header += "wikitext prompts stand in for WikiBio (not available offline).\n\n"
    body = markdown_table(summaries) + paired_section(rows, seed=settings.seed)
    if dataset == "rephrasing":
        body += "\n" + rephrasing_table(rows, instances, seed=settings.seed)
    if settings.suite == "decoding":
        body += f"\nDecoding grid '{settings.grid}': mean over prompts per grid point vs greedy\n\n"
        body += invariance_table(rows, instances)
    return header, body


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Within the block, torch uses ``threads`` threads (unchanged when ``None``)."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_suite(
    settings: SuiteSettings,
    *,
    model: nn.Module | None = None,
    loader: ModelLoader | None = None,
    progress: bool = True,
    log: Log | None = None,
) -> Report:
    """Run the eval that ``settings`` describes and write its summary (module docstring).

    Args:
        settings: The run (``heta-lens eval``'s flags are its fields).
        model: The model, already loaded (default: ``loader()``).
        loader: Loads the model (in each worker process when ``settings.workers > 1``, in
            each Ray actor with ``settings.runner == "ray"``; picklable); default
            :func:`heta_lens.load_model` of ``settings.model``, ``settings.backend``,
            ``settings.device`` and ``settings.dtype``.
        progress: Show progress bars (dataset loading and the run).
        log: Receives the run's progress lines (instance counts, files written).

    Returns:
        The :class:`Report` of the run (rows of earlier runs in ``settings.out_dir`` that
        belong to it included: a rerun resumes).

    Raises:
        ValueError: Bad methods or settings (before anything is written), or
            ``settings.out_dir`` holds a run with other settings.
        RayMissingError: ``settings.runner == "ray"`` without Ray installed.
    """
    say: Log = log or (lambda _line: None)
    if settings.runner == "ray":
        import_ray()  # fail before the model and the dataset are loaded
    methods = suite_methods(settings)
    eval_settings = settings.eval_settings()
    loader = loader or functools.partial(
        load_model,
        settings.model,
        backend=settings.backend,
        device=settings.device,
        dtype=settings.dtype,
    )
    out = settings.out_dir
    with _torch_threads(settings.threads):
        evaluated = model if model is not None else loader()
        instances = suite_instances(evaluated, settings, progress=progress)
        n_targets = sum(len(i.targets) for i in instances)
        say(f"{settings.name}: {len(instances)} instances, {n_targets} targets -> {out}")
        rows = run_eval(
            loader,
            instances,
            methods=methods,
            settings=eval_settings,
            out=out,
            workers=settings.workers,
            model=evaluated,
            progress=progress,
            ray=settings.ray_options(),
        )
        rows = select_rows(rows, instances, methods)
        summaries = summarize(rows, seed=settings.seed)
        header, body = summary_text(rows, instances, settings, summaries)
        (out / "summary.csv").write_text(csv_table(summaries))
        (out / "summary.md").write_text(header + body)
        paths = [out / "summary.md", out / "summary.csv"]
        if settings.plots:
            figures = write_plots(
                evaluated,
                rows,
                instances,
                settings=eval_settings,
                out=out,
                trace=settings.suite == "causal",
            )
            for path in figures:
                say(f"wrote {path}")
            paths += figures
    return Report(
        name=settings.name,
        settings=eval_settings,
        methods=tuple(methods),
        instances=tuple(instances),
        rows=tuple(rows),
        summaries=tuple(summaries),
        header=header,
        body=body,
        out=out,
        paths=tuple(paths),
    )
