"""The curated NarrativeQA ⊕ SciQ set as model instances (DSA / alignment evals).

Prompt template (``docs/curated_schema.md``)::

    {narrative}\\n\\n{support}\\n\\nQuestion: {question}\\nAnswer:

The explained token is the first token of ``" " + answer`` after the prompt. ``tokens`` =
prompt tokens (the model's BOS convention) + that token; ``targets`` = ``(last position,)``.
Regions (token positions whose character span overlaps the named characters; byte-level BPE
tokens include their leading space): ``"narrative"`` (the narrative segment), ``"sciq"`` (the
whole support segment), ``"support"`` (the annotated ``support_spans``), ``"question"`` (the
question text, without the "Question:" label).

Filter: an instance is kept only if the model ranks the answer's first token within its
``top_k`` (default 10) next-token predictions at the answer position; rank = number of
vocabulary entries with a strictly larger log-probability (0 = argmax), kept when
``rank < top_k``. Rows are processed in file order; ``limit`` keeps the first ``limit``
survivors (i.e. it applies after filtering). :func:`curated_survival` gives the counts.

An eval run names its filter (``EvalSettings.curated_filter``, ``heta-lens eval curated
--curated-filter``, :func:`filter_top_k`): ``top10`` (``top_k=10``, the default and the filter
of every stored run) or ``top1`` (``top_k=1``: the answer token is the model's greedy token,
its argmax; an exact tie for the maximum also counts), or ``top<k>`` for any k ≥ 1.
"""

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from heta_lens._typing import typechecked
from heta_lens.evals.datasets.align import Encoded, encode_aligned
from heta_lens.evals.datasets.base import EvalInstance, FilterStats, check_limit
from heta_lens.evals.datasets.cache import cached_load, file_digest, model_fingerprint
from heta_lens.evals.datasets.curated_build import (
    build_curated,
    default_rows,
    read_curated,
    write_curated,
)
from heta_lens.hooks import ModelAdapter, preserved_model_state
from heta_lens.models import cache_dir

PROMPT_TEMPLATE = "{narrative}\n\n{support}\n\nQuestion: {question}\nAnswer:"
BUILDER_VERSION = 1
DROP_MERGE = "answer token merges with the prompt"
DROP_LONG = "longer than n_ctx"
DROP_RANK = "answer not in top-k"

DEFAULT_CURATED_FILTER = "top10"
"""The curated filter of a new run and of a stored ``run.json`` that records none."""

Ranker = Callable[[tuple[int, ...], int], tuple[int, float]]
"""(prompt ids, target id) -> (rank of the target among next-token predictions, its log-prob)."""


def filter_top_k(name: str) -> int:
    """k of the curated filter ``name`` = ``top<k>`` (``top10`` → 10, ``top1`` → 1).

    Raises:
        ValueError: ``name`` is not ``top<k>`` with an integer k ≥ 1.

    Examples:
        >>> filter_top_k("top1"), filter_top_k("top10")
        (1, 10)
    """
    match = re.fullmatch(r"top([1-9][0-9]*)", name)
    if match is None:
        raise ValueError(
            f"unknown curated filter {name!r}; valid: top10 (the answer token in the model's "
            "top 10, the default), top1 (the answer token is the model's greedy token), top<k>"
        )
    return int(match.group(1))


def render_prompt(row: dict[str, Any]) -> tuple[str, dict[str, tuple[int, int]]]:
    """The prompt text and the character spans of ``narrative``, ``support``, ``question``."""
    narrative, support, question = row["narrative"], row["support"], row["question"]
    prompt = PROMPT_TEMPLATE.format(narrative=narrative, support=support, question=question)
    s0 = len(narrative) + 2
    q0 = s0 + len(support) + len("\n\nQuestion: ")
    spans = {
        "narrative": (0, len(narrative)),
        "support": (s0, s0 + len(support)),
        "question": (q0, q0 + len(question)),
    }
    return prompt, spans


def curated_instance(
    row: dict[str, Any],
    *,
    encode: Callable[[str], Encoded],
    rank: Ranker,
    decode: Callable[[int], str],
    n_ctx: int,
    top_k: int,
) -> EvalInstance | str:
    """One row as an instance, or the reason it is dropped (see the module docstring)."""
    prompt, spans = render_prompt(row)
    enc = encode(prompt)
    full = encode(f"{prompt} {row['answer']}").ids
    n = len(enc)
    if len(full) <= n or full[:n] != enc.ids:
        return DROP_MERGE
    if n + 1 > n_ctx:
        return DROP_LONG
    target_id = full[n]
    answer_rank, log_prob = rank(enc.ids, target_id)
    if answer_rank >= top_k:
        return DROP_RANK
    s0 = spans["support"][0]
    annotated = [(s0 + a, s0 + b) for a, b in row["support_spans"]]
    meta = {k: row[k] for k in ("answer", "sciq_index", "narrative_source") if k in row}
    meta.update(
        answer_rank=answer_rank,
        answer_log_prob=log_prob,
        support_words=[row["support"][a:b] for a, b in row["support_spans"]],
    )
    return EvalInstance(
        uid=str(row["id"]),
        dataset="curated",
        text=prompt + decode(target_id),
        tokens=(*enc.ids, target_id),
        targets=(n,),
        regions={
            "narrative": enc.overlapping(*spans["narrative"]),
            "sciq": enc.overlapping(*spans["support"]),
            "support": enc.overlapping_any(annotated),
            "question": enc.overlapping(*spans["question"]),
        },
        meta=meta,
    )


def _ranker(adapter: ModelAdapter) -> Ranker:
    def rank(ids: tuple[int, ...], target_id: int) -> tuple[int, float]:
        with torch.no_grad():
            log_probs = adapter.last_log_probs(torch.tensor([ids], dtype=torch.long))[0]
        value = log_probs[target_id]
        return int((log_probs > value).sum()), float(value)

    return rank


def default_curated_path(data_dir: str | Path | None = None) -> Path:
    """The default curated set (``build_curated(n=2400, seed=0)``), built once into the cache.

    The file lives in ``cache_dir()/evals`` under a name keyed by the source files' digests.
    """
    sciq, narratives = default_rows(data_dir)
    tag = f"{file_digest(sciq)[:8]}{file_digest(narratives)[:8]}-v{BUILDER_VERSION}"
    path = cache_dir() / "evals" / f"curated_rows-{tag}.jsonl"
    if not path.is_file():
        write_curated(path, build_curated(data_dir=data_dir))
    return path


def _curated(
    model: nn.Module,
    data_path: str | Path | None,
    data_dir: str | Path | None,
    limit: int | None,
    top_k: int,
    progress: bool,
) -> tuple[list[EvalInstance], FilterStats]:
    check_limit(limit)
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1; got {top_k}")
    path = Path(data_path) if data_path is not None else default_curated_path(data_dir)
    if not path.is_file():
        raise FileNotFoundError(f"curated data file {path} does not exist (--data / data_path)")
    rows = read_curated(path)
    adapter = ModelAdapter(model)
    key = {"fingerprint": model_fingerprint(model), "data": file_digest(path), "top_k": top_k}
    tokenizer: Any = adapter.tokenizer

    def compute(lim: int | None) -> tuple[list[EvalInstance], FilterStats]:
        kept: list[EvalInstance] = []
        dropped = {DROP_MERGE: 0, DROP_LONG: 0, DROP_RANK: 0}
        examined = 0
        with preserved_model_state(model):
            for row in tqdm(rows, desc="curated top-k filter", disable=not progress, leave=False):
                if lim is not None and len(kept) >= lim:
                    break
                examined += 1
                outcome = curated_instance(
                    row,
                    encode=lambda text: encode_aligned(adapter, text),
                    rank=_ranker(adapter),
                    decode=lambda i: str(tokenizer.decode([i])),
                    n_ctx=adapter.n_ctx,
                    top_k=top_k,
                )
                if isinstance(outcome, str):
                    dropped[outcome] += 1
                else:
                    kept.append(outcome)
        if not kept:
            raise ValueError(
                f"0 of {examined} curated rows survived for this model ("
                + ", ".join(f"{v} {k}" for k, v in dropped.items() if v)
                + f"); try a larger top_k than {top_k}"
            )
        stats = FilterStats(
            dataset="curated",
            n_candidates=examined,
            n_kept=len(kept),
            dropped=dropped,
            options={"top_k": top_k, "limit": lim, "data": str(path)},
        )
        return kept, stats

    return cached_load("curated", key, compute, limit=limit)


@typechecked
def load_curated(
    model: nn.Module,
    *,
    data_path: str | Path | None = None,
    data_dir: str | Path | None = None,
    limit: int | None = None,
    top_k: int = 10,
    progress: bool = True,
) -> list[EvalInstance]:
    """Curated NarrativeQA ⊕ SciQ instances the model can answer (answer token in its top k).

    Args:
        model: A ``HookedTransformer`` or ``TransformerBridge`` with a fast HF tokenizer.
        data_path: Any JSONL file in the curated schema; default: the set
            :func:`build_curated` makes from ``data_dir`` (built once, cached).
        data_dir: Data root for the default set.
        limit: Keep the first ``limit`` survivors (file order; applied after filtering).
        top_k: Keep rows whose first answer token has rank < ``top_k`` (default 10).
        progress: Show a progress bar while filtering.

    Raises:
        FileNotFoundError: Data file/directory missing (names the path and ``--data-dir``).
        ValueError: A malformed or invalid line (file and line number), the tokenizer's
            offsets disagree with ``to_tokens``, or no row survives.
    """
    return _curated(model, data_path, data_dir, limit, top_k, progress)[0]


@typechecked
def curated_survival(
    model: nn.Module,
    *,
    data_path: str | Path | None = None,
    data_dir: str | Path | None = None,
    top_k: int = 10,
    progress: bool = True,
) -> FilterStats:
    """How many curated rows the model keeps at ``top_k`` (all rows examined; cached)."""
    return _curated(model, data_path, data_dir, None, top_k, progress)[1]
