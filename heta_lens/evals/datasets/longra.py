"""LongRA (ReAGent's long-range analogies), rebuilt for any tokenizer with ReAGent's filter.

``reagent/longra/longra_all_candidates.jsonl`` holds 573 model-agnostic candidates: an analogy
pair filled into its category's template, e.g. "When my flight landed in Greece, ... (I had a
terrifying dream ...). I was staying in the capital," -> " Athens". Which candidates a model
gets is decided here, following ReAGent's preparation (see ``reagent/SOURCE.md``):

1. The target and the antecedent word must each be ONE token for this tokenizer, with the
   leading space they carry in the text: ``prompt + " " + word`` must tokenise to the prompt's
   tokens followed by exactly one token (ReAGent's GPT-2 rule ``len(encode(" " + w)) == 1``,
   made independent of the tokenizer's BOS convention).
2. The model's greedy next token after the prompt must be the target token BOTH with and
   without the distractor, the parenthetical "(...)." (ReAGent drops the tokens from " (" to
   ")."; here: the tokens overlapping the characters "(" ... ")."). Greedy = argmax of the full
   next-token distribution.

ReAGent's currency case fixes (``b[4] = "Euro"``, ``b[6] = "Won"``) index ITS GPT-2-filtered
list, where those entries are "euro" and "won" (ReAGent's GPT-2 instances have targets " Euro"
and " Won"). The candidates file keeps the lowercase words, and an index into a list filtered
by another tokenizer would hit other words, so the fix is applied by word: in the currency
category "euro" -> "Euro" and "won" -> "Won" (``case_fix=True``, the default), BEFORE the
single-token check, so the word checked is the word used (ReAGent checked the lowercase words
and then substituted).
"""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from heta_lens._typing import typechecked
from heta_lens.evals.datasets.align import Encoded, encode_aligned
from heta_lens.evals.datasets.base import (
    EvalInstance,
    FilterStats,
    check_limit,
    require_file,
    resolve_data_dir,
)
from heta_lens.evals.datasets.cache import cached_load, file_digest, model_fingerprint
from heta_lens.evals.datasets.jsonl import read_jsonl
from heta_lens.hooks import ModelAdapter, preserved_model_state

CANDIDATES = Path("reagent") / "longra" / "longra_all_candidates.jsonl"
FIELDS = ("category", "pair_idx", "prompt", "target_word", "antecedent_word")
CURRENCY_CASE_FIX = {"euro": "Euro", "won": "Won"}
_DISTRACTOR = re.compile(r"\([^()]*\)\.")

Encoder = Callable[[str], Encoded]
"""Text -> aligned token ids as the model tokenises it (see :func:`encode_aligned`)."""
Predictor = Callable[[tuple[int, ...]], int]
"""Token ids -> the model's greedy next token id after them."""

DROP_TARGET = "target word not one token"
DROP_ANTECEDENT = "antecedent word not one token"
DROP_LONG = "longer than n_ctx"
DROP_WITH = "mispredicted with distractor"
DROP_WITHOUT = "mispredicted without distractor"


@dataclass(frozen=True, kw_only=True)
class LongRACandidate:
    """One model-agnostic LongRA candidate (a line of the candidates file).

    Attributes:
        uid: ``"longra-<category>-<pair_idx>"``.
        category: Analogy category (e.g. ``"capital-world"``).
        prompt: Text before the target word (no trailing space).
        target_word: The word to predict (follows the prompt after one space).
        antecedent_word: The earlier word that determines it.
        antecedent_span: Character span of the antecedent's first whole-word occurrence.
        distractor_span: Character span of the parenthetical, from "(" to ")." inclusive.
        case_fixed: Whether the currency case fix changed ``target_word``.
    """

    uid: str
    category: str
    prompt: str
    target_word: str
    antecedent_word: str
    antecedent_span: tuple[int, int]
    distractor_span: tuple[int, int]
    case_fixed: bool = False


def _word_span(text: str, word: str) -> tuple[int, int] | None:
    match = re.search(rf"(?<![A-Za-z0-9]){re.escape(word)}(?![A-Za-z0-9])", text)
    return None if match is None else match.span()


def read_candidates(path: Path, *, case_fix: bool = True) -> list[LongRACandidate]:
    """Parse the candidates file (see the module docstring for ``case_fix``).

    Raises:
        FileNotFoundError: The file is missing.
        ValueError: Malformed line, missing field, or a prompt without its antecedent word or
            its "(...)." parenthetical (the message names file and line).
    """
    rows = read_jsonl(path, required_fields=FIELDS, what="LongRA candidates")
    out = []
    for number, row in enumerate(rows, start=1):
        prompt, target = str(row["prompt"]), str(row["target_word"])
        antecedent = str(row["antecedent_word"])
        fixed = case_fix and row["category"] == "currency" and target in CURRENCY_CASE_FIX
        span = _word_span(prompt, antecedent)
        parenthetical = _DISTRACTOR.search(prompt)
        if span is None or parenthetical is None:
            raise ValueError(
                f"{path}: record {number}: prompt lacks its antecedent word {antecedent!r} or "
                "the '(...).' distractor"
            )
        out.append(
            LongRACandidate(
                uid=f"longra-{row['category']}-{row['pair_idx']}",
                category=str(row["category"]),
                prompt=prompt,
                target_word=CURRENCY_CASE_FIX[target] if fixed else target,
                antecedent_word=antecedent,
                antecedent_span=span,
                distractor_span=parenthetical.span(),
                case_fixed=bool(fixed),
            )
        )
    return out


def _one_token(encode: Encoder, prompt: Encoded, text: str, word: str) -> int | None:
    """The single token ``" " + word`` adds after ``text``'s tokens, or None if not one."""
    full = encode(f"{text} {word}").ids
    n = len(prompt.ids)
    return full[n] if len(full) == n + 1 and full[:n] == prompt.ids else None


def check_candidate(
    candidate: LongRACandidate, *, encode: Encoder, predict: Predictor, n_ctx: int
) -> EvalInstance | str:
    """Apply ReAGent's filter to one candidate: the instance, or the reason it is dropped."""
    prompt = encode(candidate.prompt)
    target_id = _one_token(encode, prompt, candidate.prompt, candidate.target_word)
    if target_id is None:
        return DROP_TARGET
    if _one_token(encode, prompt, candidate.prompt, candidate.antecedent_word) is None:
        return DROP_ANTECEDENT
    if len(prompt) + 1 > n_ctx:
        return DROP_LONG
    distractor = prompt.overlapping(*candidate.distractor_span)
    if predict(prompt.ids) != target_id:
        return DROP_WITH
    removed = set(distractor)
    without = tuple(t for i, t in enumerate(prompt.ids) if i not in removed)
    if predict(without) != target_id:
        return DROP_WITHOUT
    return EvalInstance(
        uid=candidate.uid,
        dataset="longra",
        text=f"{candidate.prompt} {candidate.target_word}",
        tokens=(*prompt.ids, target_id),
        targets=(len(prompt),),
        regions={
            "antecedent": prompt.overlapping(*candidate.antecedent_span),
            "distractor": distractor,
        },
        meta={
            "category": candidate.category,
            "target_word": candidate.target_word,
            "antecedent_word": candidate.antecedent_word,
            "case_fixed": candidate.case_fixed,
        },
    )


def filter_candidates(
    candidates: Sequence[LongRACandidate],
    *,
    encode: Encoder,
    predict: Predictor,
    n_ctx: int,
    limit: int | None = None,
    progress: bool = False,
) -> tuple[list[EvalInstance], FilterStats]:
    """Run :func:`check_candidate` over ``candidates`` in order, stopping after ``limit`` kept.

    Returns:
        The kept instances and the counts (``n_candidates`` = candidates examined).

    Raises:
        ValueError: No candidate survives (the message says 0 of N and the drop reasons).
    """
    check_limit(limit)
    kept: list[EvalInstance] = []
    dropped: dict[str, int] = dict.fromkeys(
        (DROP_TARGET, DROP_ANTECEDENT, DROP_LONG, DROP_WITH, DROP_WITHOUT), 0
    )
    examined = 0
    for candidate in tqdm(candidates, desc="LongRA filter", disable=not progress, leave=False):
        if limit is not None and len(kept) >= limit:
            break
        examined += 1
        outcome = check_candidate(candidate, encode=encode, predict=predict, n_ctx=n_ctx)
        if isinstance(outcome, str):
            dropped[outcome] += 1
        else:
            kept.append(outcome)
    stats = FilterStats(
        dataset="longra",
        n_candidates=examined,
        n_kept=len(kept),
        dropped=dropped,
        options={"limit": limit},
    )
    if not kept:
        raise ValueError(
            f"0 of {examined} LongRA candidates survived ReAGent's filter for this model "
            f"({', '.join(f'{v} {k}' for k, v in dropped.items() if v)}): the model must "
            "predict the target token greedily both with and without the distractor"
        )
    return kept, stats


def _greedy(adapter: ModelAdapter) -> Predictor:
    def predict(ids: tuple[int, ...]) -> int:
        tokens = torch.tensor([ids], dtype=torch.long)
        with torch.no_grad():
            return int(adapter.last_log_probs(tokens)[0].argmax())

    return predict


def _longra(
    model: nn.Module, data_dir: str | Path | None, limit: int | None, case_fix: bool, progress: bool
) -> tuple[list[EvalInstance], FilterStats]:
    check_limit(limit)
    path = require_file(resolve_data_dir(data_dir) / CANDIDATES, what="LongRA candidates file")
    adapter = ModelAdapter(model)
    key = {"fingerprint": model_fingerprint(model), "data": file_digest(path), "fix": case_fix}

    def compute(lim: int | None) -> tuple[list[EvalInstance], FilterStats]:
        candidates = read_candidates(path, case_fix=case_fix)
        with preserved_model_state(model):
            return filter_candidates(
                candidates,
                encode=lambda text: encode_aligned(adapter, text),
                predict=_greedy(adapter),
                n_ctx=adapter.n_ctx,
                limit=lim,
                progress=progress,
            )

    return cached_load("longra", key, compute, limit=limit)


@typechecked
def load_longra(
    model: nn.Module,
    *,
    data_dir: str | Path | None = None,
    limit: int | None = None,
    case_fix: bool = True,
    progress: bool = True,
) -> list[EvalInstance]:
    """LongRA instances for ``model``: the candidates that pass ReAGent's filter.

    Each instance: ``tokens`` = prompt tokens (model's BOS convention) + the target token;
    ``targets`` = ``(last position,)``; regions ``"antecedent"`` (tokens of the antecedent
    word's first occurrence) and ``"distractor"`` (tokens overlapping "(" ... ")."). The
    filter is described in the module docstring; :func:`longra_survival` gives the counts.
    Results are cached under ``cache_dir()/evals`` (model fingerprint + data digest).

    Args:
        model: A ``HookedTransformer`` or ``TransformerBridge`` with a fast HF tokenizer.
        data_dir: Data root (default :func:`heta_lens.models.default_data_dir`).
        limit: Keep at most this many instances (the first survivors in file order).
        case_fix: Apply the currency case fix by word ("euro" -> "Euro", "won" -> "Won").
        progress: Show a progress bar while filtering.

    Raises:
        FileNotFoundError: Data directory or candidates file missing.
        ValueError: Malformed candidates file, or no candidate survives for this model.
    """
    return _longra(model, data_dir, limit, case_fix, progress)[0]


@typechecked
def longra_survival(
    model: nn.Module,
    *,
    data_dir: str | Path | None = None,
    case_fix: bool = True,
    progress: bool = True,
) -> FilterStats:
    """How many of the 573 candidates survive the filter for ``model`` (all are examined).

    Use ``stats.describe()`` for "longra: N of 573 survive (...)". Cached like
    :func:`load_longra`.
    """
    return _longra(model, data_dir, None, case_fix, progress)[1]
