"""Screen HETA variants on a stored run by rescoring only (no HVPs, no masked reruns).

    python scripts/screen_variants.py evals/runs/longra-smollm2-135m \
        --variants heta_geo,heta_rankmix,heta_max --out evals/runs/variants-longra --limit 12

Each variant's scores are derived from the run's ``heta_hessian_only``, ``heta_kl_only`` and
``heta_no_gate`` rows (``heta_lens.evals.derived``: G, S', I' rebuilt, then the live method's
combine function); the variants and the baselines (stored scores) are rescored under protocol
``standard`` with the ``rank`` and ``matched`` concentration controls
(``heta_lens.evals.rescore.rescore_rows``) into OUT/<method>/, an ordinary run directory per
method. Work goes instance chunk by instance chunk over every method, so a stopped screen has
balanced partial results; rerunning the same command resumes. OUT/screen.md gets each
variant's paired comparisons with heta and the baselines (``compare_methods``: Soft
ln-ratios, other metrics mean differences; 95 % bootstrap over instances).
"""

import argparse
import sys
from pathlib import Path

PAIRED_METRICS = (
    "soft_nc@rank",
    "soft_ns@rank",
    "soft_nc@matched",
    "soft_ns@matched",
    "soft_nc",
    "soft_ns",
    "hard_nc",
    "hard_ns",
    "aopc_insertion",
)


def _names(text: str) -> list[str]:
    return [n for n in text.split(",") if n]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("run", type=Path, help="the stored run directory")
    parser.add_argument("--variants", required=True, help="comma-separated HETA-family names")
    parser.add_argument("--baselines", default="heta,heta_kl_only,kl_occlusion")
    parser.add_argument("--out", type=Path, required=True, help="the screen's directory")
    parser.add_argument("--limit", type=int, default=None, help="first N dataset instances")
    parser.add_argument("--metrics", default="soft,hard", help="rescored groups")
    parser.add_argument("--controls", default="rank,matched")
    parser.add_argument("--chunk", type=int, default=1, help="instances per step")
    parser.add_argument("--data", type=Path, default=None, help="curated file of the run")
    args = parser.parse_args(argv)
    from tqdm.auto import tqdm

    from heta_lens.evals import load_instances, read_settings
    from heta_lens.evals.compare import compare_methods, comparison_table
    from heta_lens.evals.derived import derived_rows
    from heta_lens.evals.methods import resolve_method
    from heta_lens.evals.rescore import rescore_rows, rescored_settings
    from heta_lens.evals.store import read_rows
    from heta_lens.models import load_model

    settings = rescored_settings(
        read_settings(args.run),
        protocol="standard",
        controls=tuple(_names(args.controls)),
        metrics=tuple(_names(args.metrics)),
    )
    stored = settings.heta_config(resolve_method("heta")[1])
    variants = {v: settings.heta_config(resolve_method(v)[1]) for v in _names(args.variants)}
    model = load_model(settings.model)
    instances = load_instances(settings.dataset, model, data=args.data, limit=args.limit)
    uids = {i.uid for i in instances}
    rows = [r for r in read_rows(args.run) if r["uid"] in uids]
    derived = derived_rows(rows, variants=variants, stored=stored)
    methods = [*_names(args.baselines), *variants]
    source = {m: [r for r in [*rows, *derived] if r["method"] == m] for m in methods}
    for m, found in source.items():
        if not found:
            raise SystemExit(f"no rows for {m!r} in {args.run}")
    chunks = [instances[k : k + args.chunk] for k in range(0, len(instances), args.chunk)]
    for chunk in tqdm(chunks, desc="screen", unit="chunk"):
        chunk_uids = {i.uid for i in chunk}
        for m in methods:
            todo = [r for r in source[m] if r["uid"] in chunk_uids]
            rescore_rows(todo, args.out / m, model=model, instances=chunk, settings=settings)
    done = [r for m in methods for r in read_rows(args.out / m)]
    keys = {k for r in done for k in r["metrics"]}
    metrics = [m for m in PAIRED_METRICS if m in keys]
    parts = [
        f"# Screen of {', '.join(variants)} on {args.run} ({len(uids)} instances, "
        f"{len({(r['uid'], r['target']) for r in rows})} targets)\n",
        f"protocol {settings.protocol}, controls {','.join(settings.controls)}, groups "
        f"{','.join(settings.metrics)}. Each table: the variant minus the other method "
        "(Soft: ln(mean variant / mean other)), 95 % bootstrap over instances.\n",
    ]
    for v in variants:
        others = [m for m in methods if m != v]
        table = comparison_table(compare_methods(done, reference=v, others=others, metrics=metrics))
        parts += [f"## {v}\n", table]
    (args.out / "screen.md").write_text("\n".join(parts))
    print("\n".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
