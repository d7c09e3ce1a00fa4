"""Recompute the first instances of stored eval runs and compare with the stored rows.

    python scripts/reproduce_runs.py                      # every run under evals/runs, 3 instances
    python scripts/reproduce_runs.py evals/runs/longra-smollm2-135m --instances 1
    python scripts/reproduce_runs.py --skip-methods reagent,contextcite

For each run: its settings from ``run.json``, its model (skipped, and said so, when the model
is not installed), the first N instances of its dataset (the order the runner stored them
in), and for every (instance, target) the stored methods are recomputed with today's code
through ``heta_lens.evals.evaluate.evaluate_target`` (same seeds). Printed per run and method:
rows compared, the largest absolute and relative difference of the scores and of every
metric, and rows whose uid the dataset no longer yields (e.g. a decoding run's sampled
continuations, which this script does not regenerate). Exit status 1 if any difference
exceeds the tolerance (``--rtol``/``--atol``, default float32 round-off).
"""

import argparse
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _gap(new: float | None, old: float | None) -> tuple[float, float]:
    if new is None or old is None or (isinstance(new, float) and math.isnan(new)):
        same = (new is None or math.isnan(new)) and (old is None or math.isnan(old))
        return (0.0, 0.0) if same else (math.inf, math.inf)
    diff = abs(new - old)
    return diff, diff / max(abs(old), 1e-12)


def compare_run(
    run: Path, *, n_instances: int, skip: set[str], only: set[str]
) -> dict[str, dict[str, Any]]:
    """Method → {rows, score_abs, score_rel, metric_abs, metric_rel, worst_metric}."""
    from heta_lens.evals import load_instances, read_settings
    from heta_lens.evals.evaluate import evaluate_target
    from heta_lens.evals.store import read_rows
    from heta_lens.models import load_model

    settings = read_settings(run)
    stored = {row["key"]: row for row in read_rows(run)}
    model = load_model(settings.model)
    instances = load_instances(settings.dataset, model, curated_filter=settings.curated_filter)
    stored_uids = list(dict.fromkeys(row["uid"] for row in stored.values()))
    by_uid = {instance.uid: instance for instance in instances}
    wanted = [uid for uid in stored_uids if uid in by_uid][:n_instances]
    out: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "rows": 0,
            "score_abs": 0.0,
            "score_rel": 0.0,
            "metric_abs": 0.0,
            "metric_rel": 0.0,
            "worst_metric": "",
        }  # fmt: skip
    )
    for uid in wanted:
        instance = by_uid[uid]
        for target in instance.targets:
            methods = sorted(
                {r["method"] for r in stored.values() if r["uid"] == uid and r["target"] == target}
                - skip
                - {"random"}
            )
            if only:
                methods = [m for m in methods if m in only]
            for row in evaluate_target(model, instance, target, methods=methods, settings=settings):
                old = stored.get(row["key"])
                if old is None:
                    continue
                entry = out[row["method"]]
                entry["rows"] += 1
                for new_s, old_s in zip(row["scores"], old["scores"], strict=True):
                    a, r = _gap(new_s, old_s)
                    entry["score_abs"] = max(entry["score_abs"], a)
                    entry["score_rel"] = max(entry["score_rel"], r if a > 1e-9 else 0.0)
                for name, value in old["metrics"].items():
                    a, r = _gap(row["metrics"].get(name), value)
                    if a > entry["metric_abs"]:
                        entry["worst_metric"] = name
                    entry["metric_abs"] = max(entry["metric_abs"], a)
                    entry["metric_rel"] = max(entry["metric_rel"], r if a > 1e-9 else 0.0)
    out["_"] = {"instances": wanted, "unmatched_uids": len(set(stored_uids) - set(by_uid))}
    return dict(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", type=Path, help="run dirs (default: evals/runs/*)")
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--skip-methods", default="", help="comma-separated methods not rerun")
    parser.add_argument("--methods", default="", help="comma-separated: rerun only these")
    parser.add_argument("--atol", type=float, default=1e-4)
    parser.add_argument("--rtol", type=float, default=1e-3)
    args = parser.parse_args(argv)
    from heta_lens.models import ModelNotInstalledError

    runs = args.runs or sorted(p for p in (ROOT / "evals" / "runs").iterdir() if p.is_dir())
    skip = {m for m in args.skip_methods.split(",") if m}
    only = {m for m in args.methods.split(",") if m}
    failed = False
    for run in runs:
        print(f"== {run.name}", flush=True)
        try:
            report = compare_run(run, n_instances=args.instances, skip=skip, only=only)
        except ModelNotInstalledError as error:
            print(f"   not reproduced: {error}")
            continue
        info = report.pop("_")
        print(f"   instances {info['instances']}; stored uids not yielded by the dataset: "
              f"{info['unmatched_uids']}")  # fmt: skip
        for method, e in sorted(report.items()):
            bad = (
                max(e["score_abs"], e["metric_abs"]) > args.atol
                and max(e["score_rel"], e["metric_rel"]) > args.rtol
            )
            failed |= bad
            print(
                f"   {method:<28} rows {e['rows']:>3}  scores max|Δ| {e['score_abs']:.2e} "
                f"(rel {e['score_rel']:.1e})  metrics max|Δ| {e['metric_abs']:.2e} "
                f"(rel {e['metric_rel']:.1e}, {e['worst_metric'] or '-'})"
                + ("  MISMATCH" if bad else "")
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
