"""A run directory read back: its settings, its complete instances and their summary.

A run that is still going, or was stopped, holds instances with only some of their rows;
:func:`complete_rows` keeps the instances where every method and the random baseline have a
row for each target, so that every method is summarised on the same instances.
:func:`read_run` returns the same :class:`~heta_lens.evals.suite.Report` as a finished
:func:`~heta_lens.evals.suite.run_suite` (without the instances, which need the model).
"""

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from heta_lens.evals.evaluate import RANDOM
from heta_lens.evals.settings import EvalSettings, stored_defaults
from heta_lens.evals.store import read_rows
from heta_lens.evals.suite import Report
from heta_lens.evals.summary import markdown_table, summarize


def read_settings(directory: Path) -> EvalSettings:
    """The :class:`EvalSettings` stored in ``directory/run.json``.

    Settings that no longer exist are ignored; settings added since take their defaults,
    except ``protocol``, which a ``run.json`` written before protocols existed lacks: such a
    run was computed under ``legacy`` (:func:`heta_lens.evals.settings.stored_defaults`).

    Raises:
        FileNotFoundError: ``directory`` holds no ``run.json``.
    """
    stored = json.loads((Path(directory) / "run.json").read_text())["settings"]
    known = EvalSettings.__dataclass_fields__
    values: dict[str, Any] = {"protocol": stored_defaults()["protocol"]}
    for key, value in stored.items():
        if key == "heta_overrides":
            values[key] = tuple(value.items())
        elif key in known:
            values[key] = tuple(value) if isinstance(value, list) else value
    return EvalSettings(**values)


def complete_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of the instances where every method in ``rows`` has a row for every target.

    Examples:
        >>> rows = [{"uid": u, "target": 3, "method": m} for u, m in
        ...         [("a", "heta"), ("a", "random"), ("b", "heta")]]
        >>> sorted({r["uid"] for r in complete_rows(rows)})
        ['a']
    """
    methods = {r["method"] for r in rows}
    per_uid: dict[str, set[tuple[int, str]]] = defaultdict(set)
    for row in rows:
        per_uid[row["uid"]].add((row["target"], row["method"]))
    complete = {
        uid
        for uid, keys in per_uid.items()
        if len(keys) == len(methods) * len({t for t, _ in keys})
    }
    return [r for r in rows if r["uid"] in complete]


def read_run(
    directory: str | Path, *, complete_only: bool = True, n_resamples: int = 2000, seed: int = 0
) -> Report:
    """The :class:`~heta_lens.evals.suite.Report` of the run stored in ``directory``.

    Args:
        directory: A run directory (``run.json`` and ``rows*.jsonl``).
        complete_only: Summarise only the complete instances (:func:`complete_rows`).
        n_resamples: Bootstrap resamples of the summary.
        seed: Seed of the bootstrap.

    Returns:
        The report: ``header`` counts the instances summarised, ``body`` is the summary table.
    """
    directory = Path(directory)
    rows = read_rows(directory)
    if complete_only:
        rows = complete_rows(rows)
    summaries = summarize(rows, n_resamples=n_resamples, seed=seed)
    n_instances = len({r["uid"] for r in rows})
    adjective = "complete " if complete_only else ""
    return Report(
        name=directory.name,
        settings=read_settings(directory),
        methods=tuple(m for m in dict.fromkeys(r["method"] for r in rows) if m != RANDOM),
        instances=(),
        rows=tuple(rows),
        summaries=tuple(summaries),
        header=f"{n_instances} {adjective}instances\n\n",
        body=markdown_table(summaries),
        out=directory,
    )
