"""``heta-lens bench``: cost and quality of HETA and its presets, printed as ratios.

Every section runs in this one process on one machine, on the same prompt(s):

1. full HETA vs the same estimator written as the official code's sequential loop (one
   forward + backward + double backward per (token, probe); one forward per masked token),
   with the same probes, so the numbers must agree;
2. full HETA and each preset vs Captum ``FeatureAblation`` leave-one-out (ratio to occlusion);
3. the masked-KL term vs T independent masked forwards;
4. scaling in T: time and peak RSS per preset, with the fitted growth exponent;
5. quality of each preset vs full: Spearman ρ of scores and top-5 overlap over many prompts.
6. the eval's Soft-NS/NC, ``hard_topk_kl`` and AOPC metrics: three calls vs one shared
   forward (:func:`heta_lens.evals.metrics.perturbation_metrics`), with the largest difference.
"""

import math
import os
import platform
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from heta_lens.config import HetaConfig
from heta_lens.curvature.hvp import target_log_prob_fn
from heta_lens.hooks import ModelAdapter, preserved_model_state
from heta_lens.inputs import Prepared, prepare
from heta_lens.masking import kl_divergence, mask_rows
from heta_lens.registry import get_method

T = TypeVar("T")


@dataclass
class Measured:
    """Wall time and peak resident memory of one call."""

    seconds: float
    peak_rss_mb: float


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(fn: Callable[[], T], *, interval: float = 0.02) -> tuple[T, Measured]:
    """Run ``fn`` once; return its value, wall time and the peak RSS sampled during the call.

    With CUDA available the clock stops after ``torch.cuda.synchronize()`` (kernels run
    asynchronously); GPU memory is measured by ``benchmarks/device_timing.py``.
    """
    peak = [_rss_bytes()]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(interval):
            peak[0] = max(peak[0], _rss_bytes())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    try:
        value = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
    finally:
        seconds = time.perf_counter() - start
        done.set()
        thread.join()
    peak[0] = max(peak[0], _rss_bytes())
    return value, Measured(seconds=seconds, peak_rss_mb=peak[0] / 2**20)


def sequential_curvature(adapter: ModelAdapter, req: Prepared, probes: Tensor) -> Tensor:
    """Eq. 3 with the official code's structure: one double backward per (token, probe)."""
    fn = target_log_prob_fn(adapter, req)
    x0 = adapter.embed(req.prefix[None])[0].detach()
    m, ctx, _ = probes.shape
    out = torch.zeros(ctx, dtype=x0.dtype, device=x0.device)
    with torch.enable_grad():
        for i in range(ctx):
            for k in range(m):
                x = x0.clone().requires_grad_(True)
                (grad,) = torch.autograd.grad(fn(x[None]).sum(), x, create_graph=True)
                v = torch.zeros_like(x0)
                v[i] = probes[k, i]
                (hv,) = torch.autograd.grad(grad, x, grad_outputs=v)
                out[i] += hv[i].abs().sum() / m
    return out


def sequential_information(adapter: ModelAdapter, req: Prepared, mask: str) -> Tensor:
    """I_i with one masked forward per context token (T independent forwards)."""
    with torch.no_grad():
        x = adapter.embed(req.prefix[None])[0]
        rows = mask_rows(adapter, x, mask)
        log_p = adapter.last_log_probs(req.prefix[None], x[None])[0]
        out = []
        for i in range(x.shape[0]):
            masked = x.clone()
            masked[i] = rows[i]
            out.append(
                kl_divergence(log_p, adapter.last_log_probs(req.prefix[None], masked[None]))[0]
            )
    return torch.stack(out)


def full_memory_probe(model: Any, tokens: Tensor, config: HetaConfig) -> None:
    """The peak-memory phase of full HETA: one chunk of block HVPs (as sized for ``config``).

    Building the graph for the batched double backward and applying it to one chunk is where
    exact curvature peaks; further chunks reuse the same memory. Used where a complete run
    would exceed the benchmark's time budget.
    """
    from heta_lens.curvature import hvp_chunk_for
    from heta_lens.curvature.hvp import HvpOperator, block_probe_vectors
    from heta_lens.curvature.probes import rademacher_probes

    adapter = ModelAdapter(model)
    req = prepare(adapter, tokens, None)
    with preserved_model_state(model):
        x = adapter.embed(req.prefix[None])[0].detach()
        ctx = x.shape[0]
        probes = rademacher_probes(
            1, ctx, adapter.d_model, generator=torch.Generator().manual_seed(0), dtype=x.dtype
        )
        chunk = min(hvp_chunk_for(adapter, ctx, config.hvp), ctx)
        pairs = torch.stack([torch.arange(chunk), torch.zeros(chunk, dtype=torch.long)], 1)
        op = HvpOperator(target_log_prob_fn(adapter, req), x, strategy=config.hvp.strategy)
        op(block_probe_vectors(probes.to(x.device), pairs.to(x.device)))


def occlusion_captum(model: Any, tokens: Tensor, *, batch: int = 16) -> Tensor:
    """Leave-one-out log-prob drop per context token with Captum's ``FeatureAblation``."""
    from captum.attr import FeatureAblation

    adapter = ModelAdapter(model)
    req = prepare(adapter, tokens, None)
    fn = target_log_prob_fn(adapter, req)
    with preserved_model_state(model), torch.no_grad():
        x = adapter.embed(req.prefix[None]).detach()
        ctx = x.shape[1]
        feature_mask = torch.arange(ctx, device=x.device)[None, :, None].expand_as(x)
        ablation = FeatureAblation(fn)
        return ablation.attribute(
            x, baselines=0.0, feature_mask=feature_mask, perturbations_per_eval=batch
        )[0, :, 0]


def top_overlap(a: Tensor, b: Tensor, k: int = 5) -> float:
    """|top-k(a) ∩ top-k(b)| / k."""
    k = min(k, a.numel())
    return len(set(torch.topk(a, k).indices.tolist()) & set(torch.topk(b, k).indices.tolist())) / k


def growth_exponent(lengths: Sequence[int], seconds: Sequence[float]) -> float:
    """Slope of log(time) against log(T) (least squares)."""
    return float(np.polyfit(np.log(lengths), np.log(seconds), 1)[0])


def machine_description() -> str:
    """CPU model, core count, memory and library versions, for the results header."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    from importlib.metadata import version

    tl = version("transformer-lens")
    return (
        f"{cpu}; {os.cpu_count()} cores; {mem:.0f} GiB RAM; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); transformer-lens {tl}; "
        f"Python {platform.python_version()}"
    )


@dataclass
class Report:
    """Markdown sections accumulated by the benchmark."""

    title: str
    sections: list[str] = field(default_factory=list)

    def add(self, heading: str, rows: list[list[str]], header: list[str], note: str = "") -> str:
        lines = [f"## {heading}", ""]
        if note:
            lines += [note, ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        text = "\n".join(lines) + "\n"
        self.sections.append(text)
        return text

    def markdown(self) -> str:
        return f"# {self.title}\n\n" + "\n".join(self.sections)


def fmt_s(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds < 100 else f"{seconds:.0f} s"


def fmt_ratio(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.2f}×"


def timed_attribute(model: Any, tokens: Tensor, config: HetaConfig) -> tuple[Any, Measured]:
    """:func:`heta_lens.attribute` under :func:`measure`."""
    return measure(lambda: get_method("heta")(model, tokens, config=config))


def load_prompts(data_dir: Path, *, n: int) -> list[str]:
    """Prompts from the eval sets (wikitext openings, then TellMeWhy stories)."""
    folder = data_dir / "reagent" / "sequence_level"
    lines: list[str] = []
    for name in ("wikitext.txt", "tellmewhy2.txt"):
        path = folder / name
        if not path.exists():
            raise ValueError(f"missing benchmark data {path}; pass --data-dir")
        lines += [line.strip().replace("\t", " ") for line in path.read_text().splitlines()]
    prompts = [line for line in lines if line]
    if len(prompts) < n:
        raise ValueError(f"only {len(prompts)} prompts available in {folder}; asked for {n}")
    return prompts[:n]


def long_text(data_dir: Path) -> str:
    """A long English text (first NarrativeQA summaries) for the scaling section."""
    import json

    path = data_dir / "narrativeqa" / "summaries_valid_test.jsonl"
    if not path.exists():
        raise ValueError(f"missing benchmark data {path}; pass --data-dir")
    texts = []
    with path.open() as f:
        for _, line in zip(range(3), f, strict=False):
            texts.append(json.loads(line)["summary_detok"])
    return " ".join(texts)
