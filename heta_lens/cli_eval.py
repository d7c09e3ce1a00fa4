"""``heta-lens eval``: a thin shell over :func:`heta_lens.evals.run_suite`.

Its flags are the fields of :class:`~heta_lens.evals.suite_settings.SuiteSettings`
(:mod:`heta_lens.flags`), so each default is written once, there.
"""

import argparse
import sys
import time
from typing import Any

from heta_lens.evals import SuiteSettings, run_suite
from heta_lens.flags import add_flags, from_flags


def add_eval_parser(sub: Any) -> None:
    """Register the ``eval`` subcommand on the CLI's subparsers."""
    parser = sub.add_parser(
        "eval",
        help="faithfulness/alignment evals (Soft-NS/NC, hard top-k KL, AOPC, DSA, F1)",
        description=(
            "Evaluate attribution methods on a dataset; rows are written to OUT/rows*.jsonl as "
            "they are computed (a rerun resumes), the summary to OUT/summary.{md,csv}."
        ),
    )
    add_flags(parser, SuiteSettings)


def cmd_eval(args: argparse.Namespace) -> int:
    """Run ``heta-lens eval``: settings from the flags, :func:`run_suite`, print the summary."""
    start = time.perf_counter()
    settings = from_flags(SuiteSettings, args)
    report = run_suite(settings, log=lambda line: print(line, file=sys.stderr))
    print(report.text)
    print(
        f"done in {time.perf_counter() - start:.1f} s; wrote {report.out}/summary.md, summary.csv",
        file=sys.stderr,
    )
    return 0
