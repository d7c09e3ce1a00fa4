"""Peak memory and time of HETA's stages (gate, curvature, information) on the CPU.

    python benchmarks/memory_stages.py --lengths 256,512,1024 --stages gate,curvature,info

Every (stage, length) runs in a fresh subprocess (this script with ``--worker``) on SmolLM2-135M
float32, input as ``benchmarks/device_timing.py`` builds it (the last token explained), after
a 16-token warm-up. The worker reports its peak RSS (``resource.getrusage``: loading, the
weights and the stage) and the stage's time; ``loaded`` is the peak RSS after loading and the
warm-up. The parent polls the worker's RSS every 0.2 s and kills it past ``--max-rss-gb``
(the machine is shared). Stages, each the one :class:`heta_lens.components.ComponentCache`
call of ``--preset`` (default ``fast``): ``gate`` (attention and the rollout gate),
``curvature`` (row-block, 8 probes or ``--n-probes``, chunk ``--hvp-chunk`` or from
``--hvp-memory-gb``), ``info`` (masked reruns, prefix strategy, zero mask), ``rerun`` (only
the largest masked-rerun forward: ``--mask-chunk`` zero-masked copies of the whole prefix,
default as many as the imported heta_lens runs per forward), ``all`` (the whole attribution).
The workers import whichever heta_lens Python finds first (``PYTHONPATH=.`` for this
checkout; without it, the installed one), which is how before/after were compared.
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

WARMUP = 16


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """Load, warm up, run one stage; its row."""
    import heta_lens as H
    from heta_lens.components import ComponentCache
    from heta_lens.hooks import ModelAdapter, preserved_model_state
    from heta_lens.presets import preset
    from heta_lens.targets import prepare_target

    sys.path.insert(0, str(Path(__file__).parent))
    from device_timing import input_tokens

    torch.set_num_threads(args.threads)
    model = H.load_model("smollm2-135m")
    overrides = {"hvp_memory_gb": args.hvp_memory_gb, "hvp_chunk": args.hvp_chunk}
    if args.n_probes is not None:
        overrides["n_probes"] = args.n_probes
    config = preset(args.preset, **overrides)
    ids = input_tokens(model, args.length)

    def run(tokens: torch.Tensor) -> object:
        if args.stage == "all":
            return H.attribute(model, tokens, config=config)
        adapter = ModelAdapter(model)
        req = prepare_target(adapter, tokens, None)
        with preserved_model_state(model):
            cache = ComponentCache(adapter, req)
            if args.stage == "gate":
                return cache.gate(config)
            if args.stage == "curvature":
                return cache.curvature(config)
            if args.stage == "rerun":
                return one_rerun_chunk(adapter, req, args.mask_chunk or rerun_size(adapter, req))
            return cache.information(config)

    run(ids[:WARMUP])
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    start = time.perf_counter()
    run(ids)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {
        "stage": args.stage,
        "preset": args.preset,
        "hvp_chunk": args.hvp_chunk,
        "n_probes": args.n_probes,
        "length": args.length,
        "seconds": round(seconds, 2),
        "peak_gb": round(peak, 3),
        "loaded_gb": round(loaded, 3),
    }


def rerun_size(adapter: Any, req: Any) -> int:
    """Copies per masked-rerun forward as this checkout's heta_lens sizes them (16 before
    :func:`heta_lens.information.rerun_chunk` existed)."""
    import heta_lens.information as info
    from heta_lens.config import Information

    if not hasattr(info, "rerun_chunk"):
        return 16
    n = int(req.run_ids.numel())
    return info.rerun_chunk(adapter, n=n, chunk=16, memory_gb=Information().memory_gb)


def one_rerun_chunk(adapter: Any, req: Any, chunk: int) -> torch.Tensor:
    """The largest forward of the masked reruns: ``chunk`` zero-masked copies of the whole
    prefix (the prefix strategy's first chunk, masked from position 0, has no cache)."""
    x = adapter.embed(req.prefix[None])[0]
    chunk = min(chunk, x.shape[0])
    copies = x.expand(chunk, -1, -1).clone()
    copies[torch.arange(chunk), torch.arange(chunk)] = 0.0
    with torch.no_grad():
        return adapter.last_log_probs(req.prefix[None].expand(chunk, -1), copies)


def rss_gb(pid: int) -> float:
    """Resident set of ``pid`` in GiB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        return 0.0
    return 0.0


def run_one(args: argparse.Namespace, stage: str, length: int) -> dict[str, Any]:
    """One (stage, length) in a watched subprocess."""
    command = [
        sys.executable, __file__, "--worker", "--stage", stage, "--length", str(length),
        "--threads", str(args.threads), "--hvp-memory-gb", str(args.hvp_memory_gb),
        "--preset", args.preset,
    ]  # fmt: skip
    if args.hvp_chunk is not None:
        command += ["--hvp-chunk", str(args.hvp_chunk)]
    if args.n_probes is not None:
        command += ["--n-probes", str(args.n_probes)]
    if args.mask_chunk is not None:
        command += ["--mask-chunk", str(args.mask_chunk)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = 0.0
    while proc.poll() is None:
        seen = max(seen, rss_gb(proc.pid))
        if seen > args.max_rss_gb:
            proc.kill()
            proc.wait()
            return {"stage": stage, "length": length, "status": f"killed at {seen:.2f} GB RSS"}
        time.sleep(0.2)
    out, err = proc.communicate()
    if proc.returncode != 0:
        return {"stage": stage, "length": length, "status": err.strip().splitlines()[-1:]}
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--lengths", default="256,512,1024")
    parser.add_argument("--stages", default="gate,curvature,info")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hvp-memory-gb", type=float, default=4.0)
    parser.add_argument("--hvp-chunk", type=int, default=None, help="HVPs per double backward")
    parser.add_argument("--n-probes", type=int, default=None, help="curvature probes")
    parser.add_argument("--mask-chunk", type=int, default=None, help="copies (rerun stage)")
    parser.add_argument("--preset", default="fast", help="the preset whose stages run")
    parser.add_argument("--max-rss-gb", type=float, default=10.0)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--length", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    for length in [int(x) for x in args.lengths.split(",")]:
        for stage in args.stages.split(","):
            row = run_one(args, stage, length)
            print(json.dumps({"hvp_chunk": args.hvp_chunk, **row}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
