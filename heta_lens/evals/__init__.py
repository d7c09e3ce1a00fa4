"""Evaluations of attribution methods: baselines, datasets, metrics and the eval runner.

One run is one call: ``run_suite(SuiteSettings(dataset="curated", limit=50)) -> Report``,
which is what ``heta-lens eval curated --limit 50`` runs; ``read_run(directory)`` reads a
stored run back as the same :class:`Report`; ``rescore_run(directory, out, ...)`` recomputes
its score-only metrics under another protocol (:data:`PROTOCOLS`) or with concentration
controls, without rerunning any method.
"""

from heta_lens.evals.protocol import PROTOCOLS, Protocol, get_protocol
from heta_lens.evals.rescore import Rescored, rescore_run
from heta_lens.evals.settings import EvalSettings
from heta_lens.evals.stored import complete_rows, read_run, read_settings
from heta_lens.evals.suite import Report, load_instances, run_suite, suite_instances
from heta_lens.evals.suite_settings import DATASETS, SUITES, SuiteSettings

__all__ = [
    "DATASETS",
    "PROTOCOLS",
    "SUITES",
    "EvalSettings",
    "Protocol",
    "Report",
    "Rescored",
    "SuiteSettings",
    "complete_rows",
    "get_protocol",
    "load_instances",
    "read_run",
    "read_settings",
    "rescore_run",
    "run_suite",
    "suite_instances",
]
