"""``heta-lens attribute`` options for word/sentence views and many prompts in one run.

``--aggregate word|sentence`` adds a word- (sentence-) level table after each token table and
a token/word switch to the ``--html`` page. ``--input prompts.jsonl --out results.jsonl`` runs
every record of the file (:mod:`heta_lens.records`) through :func:`heta_lens.attribute_many`,
resuming ``--out`` when it exists.
"""

import argparse
import sys
from pathlib import Path
from typing import Any

from heta_lens.batch import attribute_many
from heta_lens.hooks import ModelAdapter
from heta_lens.records import read_records
from heta_lens.registry import MethodSpec
from heta_lens.result import AttributionResult
from heta_lens.viz.table import format_groups_table
from heta_lens.words import LEVELS

_SINGLE_ONLY = ("generate", "target_index", "target_text", "span", "contrast", "json", "html")


def add_batch_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--aggregate``, ``--input`` and ``--out`` to the ``attribute`` parser."""
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


def check_batch_arguments(args: argparse.Namespace) -> None:
    """Refuse flag combinations that mean nothing (before the model is loaded).

    Raises:
        ValueError: ``--input`` without ``--out`` or with TEXT or a one-prompt flag, ``--out``
            without ``--input``, or neither TEXT nor ``--input``.
    """
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


def print_groups(model: Any, results: list[AttributionResult], args: argparse.Namespace) -> None:
    """With ``--aggregate``, print each result's word (sentence) table."""
    if args.aggregate is None:
        return
    tokenizer = ModelAdapter(model).tokenizer
    for result in results:
        grouped = result.aggregate(args.aggregate, tokenizer=tokenizer)
        print(format_groups_table(grouped, top=args.top), end="\n\n")
