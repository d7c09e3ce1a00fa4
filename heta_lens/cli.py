"""``heta-lens`` command line: attribute a real model's prediction, list the models.

A thin layer over the library (:func:`heta_lens.load_model`, the method registry,
:mod:`heta_lens.viz`).
"""

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from heta_lens.cli_batch import (
    add_batch_arguments,
    check_batch_arguments,
    cmd_attribute_many,
    cmd_attribute_many_ray,
    print_groups,
)
from heta_lens.cli_demo import add_demo_parser, cmd_demo
from heta_lens.cli_eval import add_eval_parser, cmd_eval
from heta_lens.cluster import RayMissingError
from heta_lens.devices import DeviceOptions
from heta_lens.flags import add_flags, from_flags
from heta_lens.hooks import ModelAdapter
from heta_lens.models import ModelNotInstalledError, default_data_dir, list_models, load_model
from heta_lens.presets import PRESETS
from heta_lens.registry import MethodSpec, get_method, list_methods
from heta_lens.result import AttributionResult
from heta_lens.targets import (
    Contrast,
    Span,
    TargetLike,
    append_target_text,
    greedy_generate,
)
from heta_lens.viz.maps import HeadsChoice, head_position
from heta_lens.viz.table import format_heads, format_table

DESCRIPTION = """\
HETA (Hessian-Enhanced Token Attribution) for TransformerLens models, offline.

  heta-lens attribute "The capital of France is" --generate 3 --html heta.html
  heta-lens attribute "The capital of France is" --device cuda --dtype bfloat16
  heta-lens attribute "The capital of France is" --target-text " Paris"
  heta-lens attribute "When Mary and John went to the store, John gave a drink to" \
      --target-text " Mary" --contrast " John"
  heta-lens attribute "The tallest tower in Paris is the" --span " Eiffel Tower"
  heta-lens attribute "The capital of France is" --aggregate word
  heta-lens attribute --input prompts.jsonl --out results.jsonl
  heta-lens models
  heta-lens bench --out benchmarks/RESULTS.md
  heta-lens eval curated --limit 50 --methods heta,integrated_gradients,attention_rollout,occlusion
  heta-lens demo            # a local web page (needs the demo extra)
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="heta-lens", description=DESCRIPTION, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    att = sub.add_parser(
        "attribute",
        help="explain which input tokens drove a prediction",
        description="Attribute target token(s) to every earlier token and print a ranked table.",
    )
    att.add_argument("text", nargs="?", help="the prompt (or --input with many)")
    which = att.add_mutually_exclusive_group()
    which.add_argument(
        "--generate",
        type=int,
        metavar="K",
        help="greedily generate K tokens and attribute each (default: K=1)",
    )
    which.add_argument(
        "--target-index",
        type=int,
        metavar="N",
        help="attribute the token at index N of the tokenized text (BOS included if added)",
    )
    which.add_argument(
        "--target-text",
        metavar="TEXT",
        help='append TEXT (e.g. " Paris") and attribute each of its tokens; with --contrast, '
        "the answer (one token)",
    )
    which.add_argument(
        "--span",
        metavar="TEXT",
        help='explain the whole continuation TEXT (e.g. " Eiffel Tower"): '
        "Σ log P(its tokens | prompt), teacher forced",
    )
    att.add_argument(
        "--contrast",
        metavar="FOIL",
        help='explain logit(answer) − logit(FOIL) (e.g. " John") at the last prompt position; '
        "the answer is --target-text or the greedy next token",
    )
    att.add_argument("--model", default="smollm2-135m", help="model name, .gguf or HF dir")
    att.add_argument("--backend", choices=["bridge", "hooked"], default="bridge")
    add_flags(att, DeviceOptions)
    att.add_argument("--method", default="heta", help=f"one of: {', '.join(list_methods())}")
    att.add_argument(
        "--preset",
        choices=list(PRESETS),
        default=None,
        help="HETA estimator preset (full, row, LS, LR, WIN, fast); see benchmarks/RESULTS.md",
    )
    att.add_argument("--n-probes", type=int, default=None, help="Hutchinson probes (HETA)")
    att.add_argument(
        "--heads",
        nargs="?",
        const="top",
        type=_head_choice,
        metavar="POS",
        help="keep the gate split by attention head (HETA) and show the heads carrying the "
        "token at context position POS (default: the top-scoring token): a ranked table, and "
        "a layer × head heatmap in --html",
    )
    att.add_argument(
        "--interactions",
        action="store_true",
        help="keep the pairwise curvature interaction map (exact or LS estimator; no extra "
        "HVPs) and add its heatmap to --html",
    )
    att.add_argument("--top", type=int, default=10, help="rows of the ranked table")
    att.add_argument("--html", type=Path, help="write a self-contained HTML view")
    att.add_argument("--json", type=Path, help="write all results as JSON")
    add_batch_arguments(att)
    sub.add_parser("models", help="list loadable models and whether they are installed")
    bench = sub.add_parser(
        "bench",
        help="time HETA and its presets against baselines; print ratios",
        description="Cost and quality of HETA and its presets (sections 1-6), in one process.",
    )
    bench.add_argument("--model", default="smollm2-135m")
    add_flags(bench, DeviceOptions)
    bench.add_argument("--sections", default="1,2,3,4,5,6", help="comma-separated subset of 1-6")
    bench.add_argument("--lengths", default="32,64,128,256,512", help="context lengths (section 4)")
    bench.add_argument("--prompts", type=int, default=30, help="prompts for section 5")
    bench.add_argument("--data-dir", type=Path, default=default_data_dir(), help="eval data")
    bench.add_argument("--threads", type=int, default=None, help="torch threads")
    bench.add_argument("--out", type=Path, default=None, help="write the markdown report here")
    add_eval_parser(sub)
    add_demo_parser(sub)
    return parser


def _head_choice(text: str) -> HeadsChoice:
    """``--heads``'s value: a context position, or ``"top"`` (the top-scoring token)."""
    if text == "top":
        return "top"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a context position; got {text!r}") from None


def _targets(
    model: Any, args: argparse.Namespace
) -> tuple[torch.Tensor | str, Sequence[TargetLike]]:
    if args.contrast is not None:
        if args.generate is not None or args.target_index is not None or args.span is not None:
            raise ValueError(
                "--contrast takes the answer from --target-text, or the greedy next token "
                "when there is none; it does not combine with --generate, --target-index "
                "or --span"
            )
        answer: int | str = args.target_text
        if answer is None:
            ids, _ = greedy_generate(model, args.text, max_new_tokens=1)
            answer = int(ids[-1])
        return args.text, [Contrast(answer, args.contrast)]
    if args.span is not None:
        return args.text, [Span(args.span)]
    if args.target_text is not None:
        return append_target_text(model, args.text, args.target_text)
    if args.target_index is not None:
        return ModelAdapter(model).to_tokens(args.text), [args.target_index]
    return greedy_generate(model, args.text, max_new_tokens=args.generate or 1)


def _run_method(
    model: Any, tokens: torch.Tensor | str, target: TargetLike, args: argparse.Namespace
) -> AttributionResult:
    spec = method_spec(args)
    return spec(model, tokens, target=target, progress=True)


def method_spec(args: argparse.Namespace) -> MethodSpec:
    """The registered method ``--method`` names, with ``--preset``, ``--n-probes``,
    ``--heads`` and ``--interactions`` applied (:meth:`MethodSpec.with_preset`, ...).

    Raises:
        ValueError: Unknown method, or one of those options for a method outside the HETA
            family (``--interactions`` also for an estimator without interactions).
    """
    spec = get_method(args.method)
    spec = spec if args.preset is None else spec.with_preset(args.preset)
    spec = spec if args.n_probes is None else spec.with_probes(args.n_probes)
    return spec.keeping(gate_by_head=args.heads is not None, interactions=args.interactions)


def _cmd_bench(args: argparse.Namespace) -> int:
    from heta_lens.benchmark_run import run_benchmark

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    sections = [int(x) for x in args.sections.split(",") if x]
    if not set(sections) <= {1, 2, 3, 4, 5, 6}:
        raise ValueError(f"--sections must be a subset of 1,2,3,4,5,6; got {args.sections}")
    model = load_model(args.model, **asdict(from_flags(DeviceOptions, args)))
    run_benchmark(
        model,
        data_dir=args.data_dir,
        model_name=args.model,
        sections=sections,
        lengths=[int(x) for x in args.lengths.split(",") if x],
        n_prompts=args.prompts,
        out=args.out,
        emit=lambda text: print(text, flush=True),
    )
    return 0


def _cmd_attribute(args: argparse.Namespace) -> int:
    spec = method_spec(args)  # fail on a bad method, preset or flag before loading anything
    check_batch_arguments(args)
    if args.runner == "ray":
        return cmd_attribute_many_ray(spec, args)
    start = time.perf_counter()
    where = from_flags(DeviceOptions, args)
    print(
        f"loading {args.model} ({args.backend}, {where.device}, {where.dtype}) ...", file=sys.stderr
    )
    model = load_model(args.model, backend=args.backend, **asdict(where))
    if args.input is not None:
        return cmd_attribute_many(model, spec, args)
    tokens, targets = _targets(model, args)
    results = [
        _run_method(model, tokens, target, args)
        for target in tqdm(targets, desc="targets", unit="token", disable=len(targets) == 1)
    ]
    for result in results:
        print(format_table(result, top=args.top), end="\n\n")
        if args.heads is not None:
            position = head_position(result, args.heads)
            print(format_heads(result, position=position, top=args.top), end="\n\n")
    print_groups(model, results, args)
    if args.json is not None:
        args.json.write_text(json.dumps([r.to_dict() for r in results], indent=1))
        print(f"wrote {args.json}", file=sys.stderr)
    if args.html is not None:
        from heta_lens import viz

        viz.save_html(
            results,
            args.html,
            aggregate=args.aggregate,
            tokenizer=ModelAdapter(model).tokenizer,
            heads=args.heads,
            interactions=args.interactions,
        )
        print(f"wrote {args.html}", file=sys.stderr)
    print(f"done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


def _cmd_models() -> int:
    print(f"{'name':<14} {'installed':<10} {'backends':<14} description / install")
    for spec in list_models():
        backends = "bridge,hooked" if spec.hooked else "bridge"
        state = "yes" if spec.installed() else "no"
        print(f"{spec.name:<14} {state:<10} {backends:<14} {spec.description}")
        if not spec.installed():
            print(f"{'':<40}{spec.install}")
    print("\nAlso accepted by --model: a .gguf file or a local Hugging Face model directory.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``heta-lens`` command."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "models":
            return _cmd_models()
        if args.command == "bench":
            return _cmd_bench(args)
        if args.command == "eval":
            return cmd_eval(args)
        if args.command == "demo":
            return cmd_demo(args)
        return _cmd_attribute(args)
    except (
        ValueError,
        TypeError,
        FileNotFoundError,
        ModelNotInstalledError,
        RayMissingError,
    ) as error:
        print(f"heta-lens: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
