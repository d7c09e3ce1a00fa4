"""``heta-lens attribute`` options for word/sentence views and many prompts in one run.

``--aggregate word|sentence`` adds a word- (sentence-) level table after each token table and
a token/word switch to the ``--html`` page. ``--input prompts.jsonl --out results.jsonl`` runs
every record of the file (:mod:`heta_lens.records`) through :func:`heta_lens.attribute_many`,
resuming ``--out`` when it exists; with ``--runner ray`` the records are attributed by Ray
workers (:func:`heta_lens.batch_ray.attribute_many_ray`) into the same file.
"""

import argparse
import functools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heta_lens.batch import attribute_many
from heta_lens.cluster import RayOptions, import_ray, ray_address_flag, ray_cpus_flag, runner_flag
from heta_lens.flags import add_flags, flag, from_flags
from heta_lens.hooks import ModelAdapter
from heta_lens.models import load_model
from heta_lens.records import read_records
from heta_lens.registry import MethodSpec
from heta_lens.result import AttributionResult
from heta_lens.viz.table import format_groups_table
from heta_lens.words import LEVELS

_SINGLE_ONLY = ("generate", "target_index", "target_text", "span", "contrast", "json", "html")


@dataclass(frozen=True, kw_only=True)
class RunnerOptions:
    """``--runner``, ``--ray-address``, ``--ray-cpus`` and ``--workers`` of ``attribute``
    (the same flags as ``heta-lens eval``'s :class:`~heta_lens.evals.SuiteSettings` fields)."""

    runner: str = runner_flag()
    ray_address: str | None = ray_address_flag()
    ray_cpus: int = ray_cpus_flag()
    workers: int = flag(1, help="with --input and --runner ray: Ray workers (each loads a model)")


def add_batch_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--aggregate``, ``--input``, ``--out`` and the runner flags to ``attribute``."""
    parser.add_argument(
        "--aggregate",
        choices=LEVELS,
        default=None,
        help="also rank words (sentences): token scores summed over each; adds a token/word "
        "switch to --html and an 'aggregate' entry to each --out line",
    )
    parser.add_argument(
        "--input",
        type=Path,
        metavar="JSONL",
        help='many prompts: one record per line, e.g. {"id": "q1", "text": "...", '
        '"target_text": " Paris"} (fields: docs/batch.md); needs --out, replaces TEXT',
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="JSONL",
        help="with --input: one result line per record, resumed when the file exists",
    )
    add_flags(parser, RunnerOptions)


def check_batch_arguments(args: argparse.Namespace) -> None:
    """Refuse flag combinations that mean nothing (before the model is loaded).

    Raises:
        ValueError: ``--input`` without ``--out`` or with TEXT or a one-prompt flag, ``--out``
            without ``--input``, neither TEXT nor ``--input``, or ``--runner ray`` without
            ``--input`` (or ``--ray-address`` or ``--workers`` without ``--runner ray``).
        RayMissingError: ``--runner ray`` without Ray installed.
    """
    runner = from_flags(RunnerOptions, args)
    if runner.runner != "ray" and (runner.ray_address is not None or runner.workers != 1):
        raise ValueError("--ray-address and --workers go with --runner ray")
    if runner.runner == "ray":
        if args.input is None:
            raise ValueError("--runner ray runs many prompts: give --input FILE.jsonl and --out")
        import_ray()
    if args.input is None:
        if args.out is not None:
            raise ValueError("--out goes with --input (for one prompt, use --json)")
        if args.text is None:
            raise ValueError("give the prompt TEXT, or --input FILE.jsonl with many")
        return
    if args.out is None:
        raise ValueError("--input needs --out FILE.jsonl (where results go, one per record)")
    if args.text is not None:
        raise ValueError("give either TEXT or --input, not both")
    given = [f"--{n.replace('_', '-')}" for n in _SINGLE_ONLY if getattr(args, n) is not None]
    if given:
        raise ValueError(
            f"{', '.join(given)} apply to one prompt; with --input each record names its "
            "target (fields: docs/batch.md)"
        )
    read_records(args.input)  # fail on a bad record before loading the model


def cmd_attribute_many(model: Any, spec: MethodSpec, args: argparse.Namespace) -> int:
    """Run every record of ``--input`` into ``--out`` and say how many were computed."""
    records = read_records(args.input)
    results = attribute_many(
        model, records, method=spec, out=args.out, aggregate=args.aggregate, progress=True
    )
    count = sum(1 for _ in results)
    print(f"wrote {count} results to {args.out}", file=sys.stderr)
    return 0


def cmd_attribute_many_ray(spec: MethodSpec, args: argparse.Namespace) -> int:
    """``--input`` on Ray: each worker loads ``--model`` itself (nothing is loaded here)."""
    runner = from_flags(RunnerOptions, args)
    options = RayOptions(
        address=runner.ray_address, workers=runner.workers, cpus=runner.ray_cpus, device=args.device
    )
    loader = functools.partial(
        load_model, args.model, backend=args.backend, device=args.device, dtype=args.dtype
    )
    from heta_lens.batch_ray import attribute_many_ray

    results = attribute_many_ray(
        loader,
        read_records(args.input),
        options=options,
        method=spec,
        out=args.out,
        aggregate=args.aggregate,
    )
    count = sum(1 for _ in results)
    print(f"wrote {count} results to {args.out}", file=sys.stderr)
    return 0


def print_groups(model: Any, results: list[AttributionResult], args: argparse.Namespace) -> None:
    """With ``--aggregate``, print each result's word (sentence) table."""
    if args.aggregate is None:
        return
    tokenizer = ModelAdapter(model).tokenizer
    for result in results:
        grouped = result.aggregate(args.aggregate, tokenizer=tokenizer)
        print(format_groups_table(grouped, top=args.top), end="\n\n")
