"""Items per minute of the eval runner: the local process pool vs Ray on one node, 1 vs 2 workers.

Each configuration runs the same small eval (``--items`` (instance, target) items of toy token
sequences, methods ``heta`` with 1 probe and ``occlusion``, on the tiny random TransformerBridge
of :mod:`heta_lens.testing`, or ``--model smollm2-135m``) into a fresh directory and is timed
from the call to the last row. Ray runs on a one-machine Ray started once beforehand (its
start-up time is reported apart); its workers reserve one CPU each, as the local pool's
workers get ``cpu_count // workers`` threads. Prints a markdown table.

    RAY_USAGE_STATS_ENABLED=0 OMP_NUM_THREADS=1 python benchmarks/ray_scaling.py --items 24
"""

import argparse
import functools
import os
import tempfile
import time
from pathlib import Path

from heta_lens.cluster import RayOptions, import_ray
from heta_lens.evals.datasets import EvalInstance
from heta_lens.evals.runner import run_eval
from heta_lens.evals.settings import EvalSettings
from heta_lens.models import load_model
from heta_lens.testing import tiny_bridge

METHODS = ["heta", "occlusion"]
SETTINGS = EvalSettings(dataset="toy", model="bench", n_draws=2, heta_overrides=(("n_probes", 1),))


def instances(items: int, length: int) -> list[EvalInstance]:
    """``items // 2`` toy instances of ``length`` tokens, two targets each."""
    return [
        EvalInstance(
            uid=f"toy/{k}",
            dataset="toy",
            text="",
            tokens=tuple(1 + (k * 7 + j * 3) % 40 for j in range(length)),
            targets=(length - 3, length - 1),
        )
        for k in range(items // 2)
    ]


def timed(label: str, n_items: int, **kwargs) -> tuple[str, float]:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        rows = run_eval(methods=METHODS, settings=SETTINGS, out=Path(out), progress=False, **kwargs)
        seconds = time.perf_counter() - start
    assert len(rows) == n_items * (len(METHODS) + 1), label
    print(f"| {label} | {seconds:.1f} | {60 * n_items / seconds:.1f} |", flush=True)
    return label, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=24)
    parser.add_argument("--length", type=int, default=16, help="tokens per instance")
    parser.add_argument("--model", default="tiny", help="tiny (random) or a heta-lens model")
    args = parser.parse_args()
    loader = tiny_bridge if args.model == "tiny" else functools.partial(load_model, args.model)
    data = instances(args.items, args.length)
    n = 2 * len(data)
    common = {"load_model": loader, "instances": data}
    print(
        f"{n} items ({len(data)} instances × 2 targets, {args.length} tokens, model "
        f"{args.model}, methods {','.join(METHODS)}), cpu_count {os.cpu_count()}\n",
        flush=True,
    )
    print("| runner | wall s | items/min |\n|---|---:|---:|", flush=True)
    results = [
        timed("local, 1 process (in-process model)", n, **common, workers=1),
        timed("local pool, 2 processes", n, **common, workers=2),
    ]
    ray = import_ray()
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024**2)
    ray_start = time.perf_counter() - start
    try:
        for workers in (1, 2):
            options = RayOptions(workers=workers, cpus=1)
            label = f"Ray one node, {workers} worker{'s' * (workers > 1)}"
            results.append(timed(label, n, **common, ray=options))
    finally:
        ray.shutdown()
    print(f"\nRay start {ray_start:.1f} s (not included); ratios to the 1-process local run:")
    for label, seconds in results:
        print(f"  {label}: {results[0][1] / seconds:.2f}x")


if __name__ == "__main__":
    main()
