"""Time HETA (full and ``fast``) against leave-one-out occlusion on a device, with peak memory.

    python benchmarks/device_timing.py --device cuda --out benchmarks/device-cuda
    python benchmarks/device_timing.py --device cpu --lengths 2048 --methods fast \\
        --threads 2 --out benchmarks/device-cpu
    python benchmarks/device_timing.py --device cpu --lengths 32 --methods fast --out /tmp/t

Every (method, length) runs in a fresh subprocess (this script with ``--worker``), so its peak
memory is its own: on CUDA ``torch.cuda.max_memory_allocated`` over the timed call (the
weights included), on the CPU the process's peak resident set (``resource.getrusage``
``ru_maxrss``: model loading, the weights and the call). The worker loads the model
(:func:`heta_lens.load_model`, SmolLM2-135M by default), builds an input of exactly ``length``
tokens (BOS, then the NarrativeQA summaries shipped with heta-lens, repeated as needed) whose
last token is explained (``length - 1`` context tokens), runs the method once on its first 16
tokens (warm-up: CUDA kernels, lazy imports, the prefix fast-path check) and then times one
call through the method registry (:func:`heta_lens.get_method`; ``full`` and the other presets
are ``heta`` with that preset). A call past ``--timeout`` seconds is stopped and reported as
such. Writes ``OUT/device_timing.json`` (every row, the machine) and ``OUT/device_timing.md``
(the table, with each method's time as a multiple of occlusion's at the same length).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

import heta_lens as H
from heta_lens.benchmark import long_text, machine_description
from heta_lens.devices import DEVICE_CHOICES, DTYPES, resolve_device
from heta_lens.models import default_data_dir
from heta_lens.presets import PRESETS
from heta_lens.registry import MethodSpec

WARMUP_TOKENS = 16
MEMORY_NOTE = (
    "Peak memory: CUDA, `torch.cuda.max_memory_allocated` during the call (weights included); "
    "CPU, the worker process's peak RSS (`ru_maxrss`: loading, weights and the call). 'Before "
    "the call': CUDA, memory allocated after loading and the warm-up; CPU, the peak RSS up to "
    "then (loading peaks there)."
)


def method_spec(name: str) -> MethodSpec:
    """``heta`` with preset ``name`` when it names one (``full``, ``fast``, ...), else the
    registered method ``name`` (``occlusion``, ...)."""
    if name in PRESETS:
        return H.get_method("heta").with_preset(name)
    return H.get_method(name)


def input_tokens(model: Any, length: int) -> torch.Tensor:
    """Exactly ``length`` token ids: BOS, then the vendored long text, repeated as needed."""
    ids = model.to_tokens(long_text(default_data_dir()))[0]
    body = ids[1:]
    repeats = -(-(length - 1) // body.numel())
    return torch.cat([ids[:1], body.repeat(repeats)])[:length]


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """Load, warm up, time one call; the row as a dict (printed as JSON by ``main``)."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    start = time.perf_counter()
    model = H.load_model(args.model, device=device, dtype=args.dtype)
    load_seconds = time.perf_counter() - start
    spec = method_spec(args.method)
    config = spec.default_config
    if args.hvp_memory_gb is not None and spec.heta_family:
        config = replace(config, hvp=replace(config.hvp, memory_gb=args.hvp_memory_gb))
    ids = input_tokens(model, args.length).to(device)
    spec(model, ids[:WARMUP_TOKENS], config=config)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    result = spec(model, ids, config=config)
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    if cuda:
        peak = torch.cuda.max_memory_allocated(device)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "method": args.method,
        "length": args.length,
        "ctx": int(result.target),
        "device": str(device),
        "dtype": args.dtype,
        "status": "ok",
        "seconds": seconds,
        "peak_gb": peak / 2**30,
        "before_gb": base / 2**30,
        "memory": "cuda max_memory_allocated" if cuda else "peak RSS (ru_maxrss)",
        "load_seconds": load_seconds,
        "threads": torch.get_num_threads(),
    }


def run_one(args: argparse.Namespace, method: str, length: int) -> dict[str, Any]:
    """One (method, length) in a fresh subprocess; a timeout or a crash becomes a row too."""
    command = [
        sys.executable, __file__, "--worker", "--method", method, "--length", str(length),
        "--device", args.device, "--dtype", args.dtype, "--model", args.model,
    ]  # fmt: skip
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    if args.hvp_memory_gb is not None:
        command += ["--hvp-memory-gb", str(args.hvp_memory_gb)]
    row: dict[str, Any] = {"method": method, "length": length, "device": args.device}
    # the worker imports the same heta_lens as this process (a checkout, not another install)
    path = [str(Path(H.__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=args.timeout, env=env
        )
    except subprocess.TimeoutExpired:
        return {**row, "status": f"timeout after {args.timeout:.0f} s"}
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-3:]
        return {**row, "status": f"exit {done.returncode}: {' | '.join(tail)}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown(rows: list[dict[str, Any]], header: str) -> str:
    """The table: time, multiple of occlusion's time at the same length, peak memory."""
    occlusion = {
        r["length"]: r["seconds"] for r in rows if r["method"] == "occlusion" and "seconds" in r
    }
    lines = [
        header, "",
        "| tokens | method | time | × occlusion | peak memory | before the call |",
        "|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in rows:
        if "seconds" not in r:
            lines.append(f"| {r['length']} | {r['method']} | {r['status']} | | | |")
            continue
        ratio = r["seconds"] / occlusion[r["length"]] if r["length"] in occlusion else None
        lines.append(
            f"| {r['length']} | {r['method']} | {r['seconds']:.2f} s | "
            f"{'' if ratio is None else f'{ratio:.2f}×'} | {r['peak_gb']:.2f} GB | "
            f"{r['before_gb']:.2f} GB |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="cuda")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="float32")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--lengths", default="128,512,2048", help="input lengths in tokens")
    parser.add_argument("--methods", default="full,fast,occlusion", help="presets or methods")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (CPU)")
    parser.add_argument("--hvp-memory-gb", type=float, default=None, help="HVP chunk budget")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per call")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/device-timing"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--length", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for name in methods:
        method_spec(name)  # an unknown name fails before anything runs
    lengths = [int(x) for x in args.lengths.split(",") if x.strip()]
    if any(n <= WARMUP_TOKENS for n in lengths):
        raise SystemExit(f"--lengths must exceed the {WARMUP_TOKENS}-token warm-up")
    try:
        device = resolve_device(args.device)
    except ValueError as error:
        raise SystemExit(f"device_timing: {error}") from None
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for length in lengths:
        for method in methods:
            row = run_one(args, method, length)
            print(json.dumps(row), flush=True)
            rows.append(row)
    machine = machine_description()
    if device.type == "cuda":
        machine += f"; GPU {torch.cuda.get_device_name(device)}"
    threads = sorted({r["threads"] for r in rows if "threads" in r})
    header = (
        f"# Device timing: {args.model} ({args.dtype}) on {device}\n\n"
        f"Machine: {machine}. Worker threads: {threads}.\n\n"
        f"Produced by `python benchmarks/device_timing.py {' '.join(argv or sys.argv[1:])}`. "
        + MEMORY_NOTE
    )
    (args.out / "device_timing.json").write_text(
        json.dumps({"machine": machine, "rows": rows}, indent=1)
    )
    (args.out / "device_timing.md").write_text(markdown(rows, header))
    print(f"wrote {args.out}/device_timing.json and device_timing.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
