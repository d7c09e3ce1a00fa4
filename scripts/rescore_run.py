"""Rescore a stored eval run under another protocol or with concentration controls.

    python scripts/rescore_run.py evals/runs/curated-smollm2-135m OUT --protocol standard \
        --controls rank,matched,perm
    python scripts/rescore_run.py evals/runs/curated-smollm2-135m OUT --curated-filter top1
    python scripts/rescore_run.py evals/runs/longra-smollm2-135m OUT --limit 20 \
        --protocol standard --controls rank --metrics soft,hard --methods heta,kl_occlusion,random
    python scripts/rescore_run.py evals/runs/causal-longra-smollm2-135m OUT \
        --causal-site embed,mid,edges

Reads the run's settings and rows, loads its model and dataset, and recomputes Soft-NS/NC
(and its controls), hard-top-k, AOPC, their target-side ``*_logp`` versions (which runs
stored before them lack), DSA and F1 from the stored scores
(``heta_lens.evals.rescore.rescore_run``), and the causal metrics at the ``--causal-site``
sites the run lacks: no attribution method is rerun.
``--curated-filter top1`` keeps only the instances whose answer token is the model's greedy
token (a curated run's filter may only narrow). OUT is an ordinary
run directory (``run.json``, ``rows.jsonl``, then ``summary.md``); rerunning the same command
resumes. A curated run built from another file needs ``--data`` (run.json does not record it).
"""

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("run", type=Path, help="the stored run directory")
    parser.add_argument("out", type=Path, help="the new run directory")
    parser.add_argument("--protocol", default=None, help="legacy | standard (default: the run's)")
    parser.add_argument("--controls", default=None, help="comma-separated: rank,matched,perm")
    parser.add_argument("--methods", default=None, help="comma-separated (default: all stored)")
    parser.add_argument("--metrics", default=None, help="groups, e.g. soft,hard (default: run's)")
    parser.add_argument("--matched-fraction", type=float, default=None)
    parser.add_argument(
        "--causal-site", default=None, help="comma-separated causal sites (embed,mid,edges,...)"
    )
    parser.add_argument("--curated-filter", default=None, help="top1 | top10 (default: the run's)")
    parser.add_argument("--limit", type=int, default=None, help="first N dataset instances")
    parser.add_argument("--data", type=Path, default=None, help="curated file of the run")
    args = parser.parse_args(argv)
    from heta_lens.evals import load_instances, read_run, read_settings
    from heta_lens.evals.rescore import rescore_run, rescored_settings
    from heta_lens.models import load_model

    changes: dict[str, object] = {}
    if args.protocol is not None:
        changes["protocol"] = args.protocol
    if args.controls is not None:
        changes["controls"] = tuple(c for c in args.controls.split(",") if c)
    if args.metrics is not None:
        changes["metrics"] = tuple(m for m in args.metrics.split(",") if m)
    if args.matched_fraction is not None:
        changes["matched_fraction"] = args.matched_fraction
    if args.causal_site is not None:
        changes["causal_sites"] = tuple(c for c in args.causal_site.split(",") if c)
    if args.curated_filter is not None:
        changes["curated_filter"] = args.curated_filter
    settings = rescored_settings(read_settings(args.run), **changes)  # refuses bad changes early
    model = load_model(settings.model)
    instances = load_instances(
        settings.dataset,
        model,
        data=args.data,
        limit=args.limit,
        curated_filter=settings.curated_filter,
    )
    methods = None if args.methods is None else [m for m in args.methods.split(",") if m]
    done = rescore_run(
        args.run,
        args.out,
        model=model,
        instances=instances,
        methods=methods,
        progress=True,
        **changes,
    )
    report = read_run(args.out)
    (args.out / "summary.md").write_text(report.text)
    print(report.text)
    print(
        f"rescored {done.n_written} rows under protocol {done.settings.protocol}, controls "
        f"{','.join(done.settings.controls) or '-'}; uids not in the dataset: "
        f"{len(done.missing_uids)}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
