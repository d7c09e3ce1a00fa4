"""Print the evals/RESULTS.md headline tables: HETA's win / tie / loss against each baseline.

    python scripts/headline.py evals/runs/standard/longra-smollm2-135m [DIR ...] \\
        [--reference heta] [--drop soft_ns@rank]

One section per run directory (its complete instances only, as ``scripts/eval_table.py``):
the concentration-invariant metrics of ``heta_lens.evals.verdicts.HEADLINE_METRICS`` (counted
in the W / · / L column) and ReAGent's recipe Soft-NC/NS (``RECIPE_METRICS``: shown, not
counted), each cell the paired statistic with its verdict (``**W**``: the paired 95 %
bootstrap interval over instances lies above 0, ``**L**`` below, ``·`` it contains 0).
``--drop`` leaves out metrics that cannot rank methods on a dataset (e.g. Soft-NS on LongRA,
0 on nearly every instance for every method) and says so under the table.
"""

import argparse
from pathlib import Path

from heta_lens.evals import complete_rows, read_settings
from heta_lens.evals.evaluate import RANDOM
from heta_lens.evals.store import read_rows
from heta_lens.evals.verdicts import HEADLINE_METRICS, RECIPE_METRICS, verdict_table

LABELS = {
    "heta": "HETA",
    "heta_kl_only": "KL-only",
    "heta_hessian_only": "Hessian-only",
    "kl_occlusion": "KL-occlusion",
    "occlusion": "occlusion",
    "integrated_gradients": "IG",
    "input_x_gradient": "input×gradient",
    "saliency": "saliency",
    "contextcite": "ContextCite",
    "attnlrp": "AttnLRP",
}
"""Display names of the methods in the RESULTS tables."""


def section(directory: Path, *, reference: str, drop: frozenset[str]) -> str:
    """The heading, verdict table and notes of one run directory."""
    settings = read_settings(directory)
    rows = complete_rows(read_rows(directory))
    if not rows:
        return f"### {directory.name}: no complete instance yet\n"
    n_instances = len({r["uid"] for r in rows})
    n_targets = len({(r["uid"], r["target"]) for r in rows if r["method"] == reference})
    keys = set().union(*(r["metrics"] for r in rows if r["method"] == reference))
    shown = [m for m in (*HEADLINE_METRICS, *RECIPE_METRICS) if m in keys and m not in drop]
    counted = [m for m in HEADLINE_METRICS if m in shown]
    ran = [m for m in dict.fromkeys(r["method"] for r in rows) if m not in (reference, RANDOM)]
    others = sorted(ran, key=lambda m: list(LABELS).index(m) if m in LABELS else len(LABELS))
    table = verdict_table(
        rows,
        reference=reference,
        metrics=shown,
        others=others,
        counted=counted,
        bold=True,
        labels=LABELS,
    )
    lines = [
        f"### {settings.dataset}, {settings.model} "
        f"({n_instances} instances, {n_targets} targets; protocol `{settings.protocol}`)",
        "",
        table,
        f"(W / · / L counts the {len(counted)} concentration-invariant columns, not the recipe's.)",
    ]
    if dropped := sorted(drop & keys):
        lines.append(f"Left out (cannot rank methods here): {', '.join(dropped)}.")
    return "\n".join(lines) + "\n"


def main(directories: list[str], *, reference: str, drop: frozenset[str]) -> None:
    for directory in directories:
        print(section(Path(directory), reference=reference, drop=drop))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("directories", nargs="+", help="eval run directories")
    parser.add_argument("--reference", default="heta", help="the method judged (default heta)")
    parser.add_argument("--drop", default="", help="comma-separated metrics to leave out")
    args = parser.parse_args()
    main(
        args.directories,
        reference=args.reference,
        drop=frozenset(m for m in args.drop.split(",") if m),
    )
