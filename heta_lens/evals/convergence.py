"""Methods that hit their step limit before their own convergence rule held: labelled, and
left out of the automatic paired comparisons.

ReAGent (:mod:`heta_lens.methods.reagent`) runs at most ``max_steps`` update steps (100 by
default; the official code allows 5,000) and converges when every probe's stopping condition
has held. Its rows store ``diagnostics`` ``steps``, ``probes_stopped`` and ``n_probes``. A row
with ``probes_stopped < n_probes`` did not converge, and its ``steps`` is the limit N: the
loop ends early only once every probe has stopped. Any method whose rows carry those three
diagnostics is judged the same way (none but ReAGent does today). ReAGent rows stored before
the diagnostics were (the LongRA run) cannot show convergence: they count as unconverged at
the registered default limit (:data:`STEP_LIMITED`), the only one an eval runs, and the label
says their convergence was not recorded. Every table of an eval run
names such a method "``reagent (unconverged at 100 steps, 37/40 targets)``", and
:func:`heta_lens.evals.compare.compare_methods` leaves it out of the methods compared by default
(``heta-lens eval``'s paired section, ``scripts/eval_table.py --compare``): its numbers are
not those of the method as published, so no comparison with it is drawn automatically.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from heta_lens.methods.reagent import ReagentConfig

STEP_LIMITED: dict[str, int] = {"reagent": ReagentConfig().max_steps}
"""Method → the step limit of its rows that store no convergence diagnostics: the registered
default config's ``max_steps`` (an eval runs a method's registered default; ReAGent's has been
100 since it was added)."""


@dataclass(frozen=True, kw_only=True)
class Unconverged:
    """A method with rows that stopped at their step limit.

    Attributes:
        steps: The step limit N of its unconverged rows (the largest, if they differ).
        rows: Its rows (targets) whose diagnostics show they did not converge.
        recorded: Its rows that store convergence diagnostics.
        unrecorded: Its rows that store none (counted as unconverged at :data:`STEP_LIMITED`).
    """

    steps: int
    rows: int
    recorded: int
    unrecorded: int = 0

    @property
    def label(self) -> str:
        """``unconverged at N steps: k/n targets`` (and ``m not recorded``)."""
        parts = [f"{self.rows}/{self.recorded} targets"] if self.recorded else []
        if self.unrecorded:
            parts.append(f"not recorded for {self.unrecorded} targets")
        return f"unconverged at {self.steps} steps: {', '.join(parts)}"


def _converged(diagnostics: dict[str, Any]) -> bool | None:
    """Whether a row met its convergence rule; ``None`` when it stores no such diagnostics."""
    if not {"steps", "probes_stopped", "n_probes"} <= diagnostics.keys():
        return None
    return int(diagnostics["probes_stopped"]) >= int(diagnostics["n_probes"])


def unconverged(rows: Sequence[dict[str, Any]]) -> dict[str, Unconverged]:
    """Method → :class:`Unconverged`, for each method with at least one unconverged row.

    Examples:
        >>> row = {"method": "reagent", "diagnostics": {"steps": 100, "probes_stopped": 3,
        ...        "n_probes": 8}}
        >>> unconverged([row, {"method": "heta"}])["reagent"].label
        'unconverged at 100 steps: 1/1 targets'
    """
    limits: dict[str, list[int]] = defaultdict(list)
    recorded: dict[str, int] = defaultdict(int)
    unrecorded: dict[str, int] = defaultdict(int)
    for row in rows:
        method, diagnostics = row["method"], row.get("diagnostics", {})
        converged = _converged(diagnostics)
        if converged is None:
            if method in STEP_LIMITED:
                unrecorded[method] += 1
            continue
        recorded[method] += 1
        if not converged:
            limits[method].append(int(diagnostics["steps"]))
    return {
        method: Unconverged(
            steps=max([*limits[method], *([STEP_LIMITED[method]] if unrecorded[method] else [])]),
            rows=len(limits[method]),
            recorded=recorded[method],
            unrecorded=unrecorded[method],
        )
        for method in dict.fromkeys([*limits, *unrecorded])
    }


def labelled(method: str, found: dict[str, Unconverged]) -> str:
    """``method``, with its label in parentheses when it is in ``found``."""
    return f"{method} ({found[method].label})" if method in found else method
