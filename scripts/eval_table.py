"""Print the summary table of an eval run directory, from its completed instances only.

    python scripts/eval_table.py evals/runs/curated-smollm2-135m [--plot] [--compare heta]

Useful while a run is in progress or after it was interrupted (the run itself prints the
table only when it ends); an instance counts once every method and the random baseline have
a row for each of its targets. ``--plot`` also writes DIR/deletion.png (AOPC deletion curves
of the complete instances, when the run computed them). ``--compare REF`` adds the paired
comparisons of REF with every other method (``heta_lens.evals.compare``) on ``--metrics``
(default soft_nc,soft_ns).
"""

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from heta_lens.evals.compare import compare_methods, comparison_table
from heta_lens.evals.store import read_rows
from heta_lens.evals.summary import markdown_table, summarize


def main(
    directory: str,
    *,
    plot: bool = False,
    compare: str | None = None,
    metrics: tuple[str, ...] = ("soft_nc", "soft_ns"),
) -> None:
    rows = read_rows(Path(directory))
    methods = {r["method"] for r in rows}
    per_uid: dict[str, set[tuple[int, str]]] = defaultdict(set)
    for r in rows:
        per_uid[r["uid"]].add((r["target"], r["method"]))
    complete = {
        uid
        for uid, keys in per_uid.items()
        if len(keys) == len(methods) * len({t for t, _ in keys})
    }
    kept = [r for r in rows if r["uid"] in complete]
    print(f"{len(complete)} complete instances\n")
    print(markdown_table(summarize(kept)))
    if compare is not None:
        print(f"Paired comparisons with {compare} (95 % bootstrap over instances):\n")
        print(comparison_table(compare_methods(kept, reference=compare, metrics=metrics)))
    if plot and any(r.get("curves", {}).get("deletion") for r in kept):
        from heta_lens.evals.plots import plot_deletion_curves

        settings = json.loads((Path(directory) / "run.json").read_text())["settings"]
        path = plot_deletion_curves(
            kept, settings["aopc_fractions"], Path(directory) / "deletion.png"
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
