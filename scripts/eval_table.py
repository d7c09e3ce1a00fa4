"""Print the summary table of an eval run directory, from its completed instances only.

    python scripts/eval_table.py evals/runs/curated-smollm2-135m [--plot] [--compare heta]

Useful while a run is in progress or after it was interrupted (the run itself prints the
table only when it ends); an instance counts once every method and the random baseline have
a row for each of its targets. ``--plot`` also writes DIR/deletion.png (AOPC deletion curves
of the complete instances, when the run computed them). ``--compare REF`` adds the paired
comparisons of REF with every other method (``heta_lens.evals.compare``) on ``--metrics``
(default soft_nc,soft_ns), except methods that stopped at their step limit unconverged
(ReAGent, ``heta_lens.evals.convergence``), which every table labels.
"""

import argparse
import sys
from pathlib import Path

from heta_lens.evals import read_run
from heta_lens.evals.compare import compare_methods, comparison_table


def main(
    directory: str,
    *,
    plot: bool = False,
    compare: str | None = None,
    metrics: tuple[str, ...] = ("soft_nc", "soft_ns"),
) -> None:
    report = read_run(directory)  # the complete instances, as heta_lens.evals.read_run keeps them
    print(report.text)
    if compare is not None:
        print(f"Paired comparisons with {compare} (95 % bootstrap over instances):\n")
        found = compare_methods(report.rows, reference=compare, metrics=metrics)
        print(comparison_table(found, report.rows))
    if plot and any(r.get("curves", {}).get("deletion") for r in report.rows):
        from heta_lens.evals.plots import plot_deletion_curves

        path = plot_deletion_curves(
            report.rows, report.settings.aopc_fractions, Path(directory) / "deletion.png"
        )
        print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", help="an eval run directory (holds rows*.jsonl)")
    parser.add_argument("--plot", action="store_true", help="also write DIR/deletion.png")
    parser.add_argument("--compare", metavar="REF", help="paired comparisons with REF")
    parser.add_argument("--metrics", default="soft_nc,soft_ns", help="metrics of --compare")
    args = parser.parse_args()
    main(
        args.directory,
        plot=args.plot,
        compare=args.compare,
        metrics=tuple(m for m in args.metrics.split(",") if m),
    )
