"""The curvature ablations and β/γ sweep with exact eq. 3 curvature in place of ``fast``'s.

    python benchmarks/exact_curvature_ablations.py \
        --agreement evals/runs/curvature-agreement-smollm2-135m \
        --out evals/runs/exact-curvature-ablations-smollm2-135m --datasets curated

For every pair of the curvature-agreement run (``benchmarks/curvature_agreement.py``: exact
and ``fast`` S on the same probes) of the chosen datasets, G, S' and I' are rebuilt from the
stored eval run's ``heta_hessian_only`` / ``heta_kl_only`` / ``heta_no_gate`` rows
(``heta_lens.evals.derived``), after checking that the stored S' is the agreement run's
``fast`` S sum-normalised (the same estimator on the same probes: it must match to float32
round-off, or the script stops). Each configuration below is then scored twice, with the stored
S' (``<name>_fast``) and with S'_exact = exact S / Σ exact S (``<name>_exact``), by the live
method's combine function, and rescored (protocol ``standard``; default groups: alignment,
i.e. DSA / F1, which need no forward) into OUT/<dataset>/:

- ``heta`` G·(½S' + ½I'); ``beta25`` / ``beta75`` G·(βS' + (1−β)I');
- ``hessian_only`` G·S'; ``no_gate`` ½S' + ½I'.

(KL-only does not use the curvature.) OUT/summary.md holds, per configuration and metric, the
paired difference exact − fast (95 % bootstrap over instances), and each configuration's
difference from KL-only under both estimators: whether "curvature helps DSA/F1" survives
exact curvature. Rerunning resumes.
"""

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
RUNS = {
    name: ROOT / "evals" / "runs" / f"{name}-smollm2-135m"
    for name in ("curated-all", "longra", "tellmewhy", "wikitext")
}
RUNS["curated"] = RUNS.pop("curated-all")
CONFIGS: dict[str, dict[str, Any]] = {
    "heta": {"beta": 0.5, "gamma": 0.5},
    "beta25": {"beta": 0.25, "gamma": 0.75},
    "beta75": {"beta": 0.75, "gamma": 0.25},
    "hessian_only": {"beta": 1.0, "gamma": 0.0},
    "no_gate": {"beta": 0.5, "gamma": 0.5, "gate": False},
}
MATCH_RTOL = 1e-4
"""Stored S' (float32 JSON, rebuilt by division) against the agreement run's fast S / Σ."""


def check_same_fast(terms: Any, fast: torch.Tensor, where: str) -> float:
    """Max relative deviation of the stored S' from fast/Σfast at the gated positions."""
    kept = terms.gate_term > 0
    mine = fast / fast.sum()
    dev = float(((terms.curvature_term - mine)[kept]).abs().max() / mine[kept].abs().max())
    if dev > MATCH_RTOL:
        raise SystemExit(f"{where}: stored S' is not the agreement run's fast S (dev {dev:.2e})")
    return dev


def scored_rows(base: dict[str, Any], terms: Any, exact: torch.Tensor) -> list[dict[str, Any]]:
    """The rows of every configuration, with the stored and with the exact S'."""
    from heta_lens.scoring import combine

    out = []
    for estimator, s in (("fast", terms.curvature_term), ("exact", exact / exact.sum())):
        for name, cfg in CONFIGS.items():
            gate = terms.gate_term if cfg.get("gate", True) else torch.ones_like(s)
            scores = combine(
                gate,
                s,
                terms.information_term,
                beta=cfg["beta"],
                gamma=cfg["gamma"],
                mix="additive",
            )
            method = f"{name}_{estimator}"
            out.append(
                {
                    "key": f"{base['uid']}|{base['target']}|{method}",
                    **{k: base[k] for k in ("uid", "dataset", "target", "ctx") if k in base},
                    "method": method,
                    "seconds": 0.0,
                    "scores": [float(x) for x in scores],
                    "metrics": {},
                    "curves": {},
                }
            )
    return out


def against_kl_only(rows: Sequence[dict[str, Any]], estimator: str, metrics: list[str]) -> str:
    """One line per configuration: its paired difference from KL-only, with the verdict."""
    from heta_lens.evals.compare import compare_methods
    from heta_lens.evals.summary import header
    from heta_lens.evals.verdicts import SYMBOL, verdict

    lines = [
        "| configuration | " + " | ".join(header(m) for m in metrics) + " |",
        "|---|" + "---|" * len(metrics),
    ]
    for name in CONFIGS:
        method = f"{name}_{estimator}"
        found = compare_methods(rows, reference=method, others=["heta_kl_only"], metrics=metrics)
        cells = [
            f"{SYMBOL[verdict(c)]} {c.interval.mean:+.3f} [{c.interval.low:.3f}, "
            f"{c.interval.high:.3f}]"
            for c in found
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--agreement", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--datasets", default="curated")
    parser.add_argument("--metrics", default="alignment", help="rescored groups")
    parser.add_argument("--controls", default="", help="e.g. rank")
    parser.add_argument(
        "--instances",
        type=int,
        default=52,
        help="instances loaded per dataset: the agreement run's 4 x --per-dataset (13)",
    )
    args = parser.parse_args(argv)
    from heta_lens.evals import load_instances, read_settings
    from heta_lens.evals.derived import terms_from_rows
    from heta_lens.evals.rescore import rescore_rows, rescored_settings
    from heta_lens.evals.store import read_rows
    from heta_lens.evals.verdicts import verdict_table
    from heta_lens.models import load_model

    agreement = [json.loads(x) for x in (args.agreement / "rows.jsonl").read_text().splitlines()]
    model = None
    report = ["# Exact vs `fast` curvature in HETA's ablations and β/γ sweep\n"]
    for dataset in args.datasets.split(","):
        pairs = {(r["uid"], r["target"]): r for r in agreement if r["dataset"] == dataset}
        settings = rescored_settings(
            read_settings(RUNS[dataset]),
            protocol="standard",
            metrics=tuple(m for m in args.metrics.split(",") if m),
            controls=tuple(c for c in args.controls.split(",") if c),
        )
        stored: dict[tuple[str, int], dict[str, Any]] = {}
        for row in read_rows(RUNS[dataset]):
            if (row["uid"], row["target"]) in pairs:
                stored.setdefault((row["uid"], row["target"]), {})[row["method"]] = row
        rows, devs = [], []
        for key, pair in pairs.items():
            terms = terms_from_rows(stored[key])
            fast = torch.tensor(pair["fast"], dtype=torch.float64)
            devs.append(check_same_fast(terms, fast, f"{dataset} {key}"))
            exact = torch.tensor(pair["exact"], dtype=torch.float64)
            rows.extend(scored_rows(stored[key]["heta_kl_only"], terms, exact))
            rows.append({**stored[key]["heta_kl_only"], "metrics": {}, "curves": {}})
        model = model if model is not None else load_model(settings.model)
        uids = {u for u, _ in pairs}
        found = load_instances(dataset, model, limit=args.instances)
        instances = [i for i in found if i.uid in uids]
        if {i.uid for i in instances} != uids:
            raise SystemExit(
                f"{dataset}: instances {sorted(uids - {i.uid for i in instances})} not found"
            )
        done = rescore_rows(
            rows,
            args.out / dataset,
            model=model,
            instances=instances,
            settings=settings,
            progress=True,
        )
        keys = sorted({k for r in done.rows for k in r["metrics"]})
        report.append(
            f"## {dataset}: {len(pairs)} instances; stored S' = fast S/Σ to {max(devs):.1e}\n"
        )
        for name in CONFIGS:
            sub = [r for r in done.rows if r["method"] in (f"{name}_exact", f"{name}_fast")]
            report.append(f"### {name}: exact − fast\n")
            report.append(verdict_table(sub, reference=f"{name}_exact", metrics=keys))
        for estimator in ("fast", "exact"):
            report.append(f"### {estimator}: each configuration − KL-only\n")
            report.append(against_kl_only(done.rows, estimator, keys))
    text = "\n".join(report)
    (args.out / "summary.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
