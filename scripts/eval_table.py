"""Print the summary table of an eval run directory, from its completed instances only.

    python scripts/eval_table.py evals/runs/curated-smollm2-135m [--plot] [--compare heta]

Useful while a run is in progress or after it was interrupted (the run itself prints the
table only when it ends); an instance counts once every method and the random baseline have
a row for each of its targets. ``--plot`` also writes DIR/deletion.png (AOPC deletion curves
of the complete instances, when the run computed them). ``--compare REF`` adds the paired
comparisons of REF with every other method (``heta_lens.evals.compare``) on ``--metrics``
(default soft_nc,soft_ns), except methods that stopped at their step limit unconverged
(ReAGent, ``heta_lens.evals.convergence``), which every table labels. ``--verdicts REF``
prints, per method, whether REF wins (``W``: paired interval above 0), ties (``·``) or loses
(``L``) on each of ``--metrics`` (``heta_lens.evals.verdicts``; the RESULTS.md headline).
"""

import argparse
import sys
from pathlib import Path

from heta_lens.evals import read_run
from heta_lens.evals.compare import compare_methods, comparison_table
from heta_lens.evals.verdicts import verdict_table


def main(
    directory: str,
    *,
    plot: bool = False,
    compare: str | None = None,
    verdicts: str | None = None,
    metrics: tuple[str, ...] = ("soft_nc", "soft_ns"),
) -> None:
    report = read_run(directory)  # the complete instances, as heta_lens.evals.read_run keeps them
    print(report.text)
    if compare is not None:
        print(f"Paired comparisons with {compare} (95 % bootstrap over instances):\n")
        found = compare_methods(report.rows, reference=compare, metrics=metrics)
        print(comparison_table(found, report.rows))
    if verdicts is not None:
        print(f"{verdicts}: win (W) / tie (·) / loss (L), paired 95 % bootstrap over instances:\n")
        print(verdict_table(report.rows, reference=verdicts, metrics=metrics))
    if plot and any(r.get("curves", {}).get("deletion") for r in report.rows):
        from heta_lens.evals.plots import plot_deletion_curves

        path = plot_deletion_curves(
            report.rows, report.settings.aopc_fractions, Path(directory) / "deletion.png"
        )
        print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("directory", help="an eval run directory (holds rows*.jsonl)")
    parser.add_argument("--plot", action="store_true", help="also write DIR/deletion.png")
    parser.add_argument("--compare", metavar="REF", help="paired comparisons with REF")
    parser.add_argument("--verdicts", metavar="REF", help="win / tie / loss of REF")
    parser.add_argument(
        "--metrics", default="soft_nc,soft_ns", help="metrics of --compare / --verdicts"
    )
    args = parser.parse_args()
    main(
        args.directory,
        plot=args.plot,
        compare=args.compare,
        verdicts=args.verdicts,
        metrics=tuple(m for m in args.metrics.split(",") if m),
    )
