"""Evaluations of attribution methods: baselines, datasets, metrics and the eval runner.

One run is one call: ``run_suite(SuiteSettings(dataset="curated", limit=50)) -> Report``,
which is what ``heta-lens eval curated --limit 50`` runs; ``read_run(directory)`` reads a
stored run back as the same :class:`Report`.
"""

from heta_lens.evals.settings import DATASETS, SUITES, EvalSettings, SuiteSettings
from heta_lens.evals.stored import complete_rows, read_run, read_settings
from heta_lens.evals.suite import Report, load_instances, run_suite, suite_instances

__all__ = [
    "DATASETS",
    "SUITES",
    "EvalSettings",
    "Report",
    "SuiteSettings",
    "complete_rows",
    "load_instances",
    "read_run",
    "read_settings",
    "run_suite",
    "suite_instances",
]
