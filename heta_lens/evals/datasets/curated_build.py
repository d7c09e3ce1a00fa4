"""Building the curated NarrativeQA ⊕ SciQ set (pure text, no model; schema in
``docs/curated_schema.md``).

Rules (all deterministic; ``seed`` only shuffles the narrative pool):

- Sentences: :func:`split_sentences` ends a sentence at ``.``, ``!`` or ``?`` (plus closing
  quotes/brackets) followed by whitespace and an uppercase letter, digit, quote or bracket,
  except after a listed abbreviation (Mr., Dr., St., ...) or a single-letter initial.
- Narrative segments: from each NarrativeQA summary (``summary_detok``, file order), greedily
  take runs of consecutive sentences: start at sentence ``i``, add sentences while the run
  has at most 3 sentences and at most 60 words (whitespace-separated); keep the run if it has
  2-3 sentences and continue after it, otherwise skip sentence ``i``. Segments never overlap.
- SciQ rows (CSV order, index = 0-based row): eligible when ``correct_answer`` occurs in
  ``support`` as a whole word/phrase (case-insensitive; no letter or digit directly before or
  after). The support is cut to the sentence holding the answer's first occurrence, then the
  previous sentence, then the next one are added, each only if the cut stays within 60 words
  (so at most 3 sentences). Rows whose answer sentence alone exceeds 60 words are skipped.
- Whitespace runs in narrative and support are collapsed to single spaces.
- ``support_spans``: the character spans (in the cut support) of every answer occurrence
  (same match rule) and of every support word that is a question content word, merged where
  they overlap. Content word: a maximal run of ASCII letters, lowercased, at least 3 letters,
  not in :data:`STOPWORDS`; a support word matches when its lowercase form equals one.
- Pairing: narrative segments are shuffled with ``random.Random(seed)``; instance ``k`` pairs
  eligible SciQ row ``k mod R`` with segment ``k mod P`` (``R`` rows, ``P`` segments), so each
  row appears ``n / R`` times with different segments and no pair repeats (needs
  ``n <= lcm(R, P)``).
"""

import csv
import math
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from heta_lens.evals.datasets.base import require_file, resolve_data_dir
from heta_lens.evals.datasets.jsonl import read_jsonl, write_jsonl

SCIQ = Path("sciq") / "sciq_test_with_support.csv"
NARRATIVES = Path("narrativeqa") / "summaries_valid_test.jsonl"
MAX_WORDS = 60
NARRATIVE_SENTENCES = (2, 3)
SUPPORT_SENTENCES = 3
_STOPWORDS_TEXT = """
    a about above after again against all also among an and any are as at be because been
    before being below between both but by can could did do does doing down during each either
    few for from further had has have having her here hers him his how however into its itself
    just may might more most much must near not now off once only other our ours out over own
    per same she should since some such than that the their theirs them then there these they
    this those through thus too under until upon very was were what when where whether which
    while who whom whose why will with within without would you your yours
    called call term terms known name named type types kind kinds refer refers referred
    describe described example examples following used use"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
"""Words never counted as question content words: English function words plus question
fillers ("called", "term", "known", "type", "example", ...)."""

_ABBREVIATIONS_TEXT = "mr mrs ms dr st jr sr mt prof rev capt col gen lt sgt vs etc fig eq inc ltd"
_ABBREVIATIONS = frozenset(_ABBREVIATIONS_TEXT.split())
_BOUNDARY = re.compile(r"[.!?][\"')\]]*\s+(?=[A-Z0-9\"'(\[])")
_WORD = re.compile(r"[A-Za-z]+")


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences (rule in the module docstring), whitespace-stripped."""
    out, start = [], 0
    for match in _BOUNDARY.finditer(text):
        before = re.search(r"(\w+)[.!?][\"')\]]*$", text[start : match.start() + 1])
        word = before.group(1) if before else ""
        if word.lower() in _ABBREVIATIONS or (len(word) == 1 and word.isupper()):
            continue
        out.append(text[start : match.end()].strip())
        start = match.end()
    out.append(text[start:].strip())
    return [s for s in out if s]


def _words(text: str) -> int:
    return len(text.split())


def _clean(text: str) -> str:
    return " ".join(text.split())


def answer_spans(text: str, answer: str) -> list[tuple[int, int]]:
    """Case-insensitive whole-word/phrase occurrences of ``answer`` in ``text``."""
    pattern = rf"(?<![A-Za-z0-9]){re.escape(answer)}(?![A-Za-z0-9])"
    return [m.span() for m in re.finditer(pattern, text, flags=re.IGNORECASE)]


def content_words(question: str) -> set[str]:
    """Lowercase ASCII-letter runs of at least 3 letters that are not :data:`STOPWORDS`."""
    words = (w.lower() for w in _WORD.findall(question))
    return {w for w in words if len(w) >= 3 and w not in STOPWORDS}


def support_spans(support: str, question: str, answer: str) -> list[tuple[int, int]]:
    """Answer occurrences plus question content words in ``support``, overlaps merged."""
    wanted = content_words(question)
    spans = answer_spans(support, answer)
    spans += [m.span() for m in _WORD.finditer(support) if m.group().lower() in wanted]
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def narrative_segments(summary: str) -> list[tuple[int, str]]:
    """(first sentence index, segment text) for one summary (rule in the module docstring)."""
    sentences = split_sentences(summary)
    out, i = [], 0
    while i < len(sentences):
        count, words = 0, 0
        while (
            i + count < len(sentences)
            and count < NARRATIVE_SENTENCES[1]
            and words + _words(sentences[i + count]) <= MAX_WORDS
        ):
            words += _words(sentences[i + count])
            count += 1
        if count >= NARRATIVE_SENTENCES[0]:
            out.append((i, _clean(" ".join(sentences[i : i + count]))))
            i += count
        else:
            i += 1
    return out


def cut_support(support: str, answer: str) -> str | None:
    """The answer's sentence, then its previous and next sentence if the cut stays within
    ``MAX_WORDS``; None when the answer does not occur or its sentence is too long."""
    sentences = [_clean(s) for s in split_sentences(support)]
    k = next((i for i, s in enumerate(sentences) if answer_spans(s, answer)), None)
    if k is None or _words(sentences[k]) > MAX_WORDS:
        return None
    lo, hi = k, k + 1
    for candidate in (k - 1, k + 1):
        if 0 <= candidate < len(sentences) and hi - lo < SUPPORT_SENTENCES:
            new_lo, new_hi = min(lo, candidate), max(hi, candidate + 1)
            if sum(_words(s) for s in sentences[new_lo:new_hi]) <= MAX_WORDS:
                lo, hi = new_lo, new_hi
    return " ".join(sentences[lo:hi])


def _sciq_rows(path: Path) -> list[dict[str, Any]]:
    with require_file(path, what="SciQ CSV").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    needed = {"question", "correct_answer", "support"}
    if rows and not needed <= set(rows[0]):
        raise ValueError(f"{path}: needs columns {sorted(needed)}; has {sorted(rows[0])}")
    out = []
    for index, row in enumerate(rows):
        answer, question = _clean(row["correct_answer"]), _clean(row["question"])
        support = cut_support(row["support"], answer) if answer else None
        if support is not None and question:
            out.append(
                {"sciq_index": index, "question": question, "answer": answer, "support": support}
            )
    return out


def _narrative_pool(path: Path, seed: int) -> list[dict[str, Any]]:
    rows = read_jsonl(path, required_fields=("document_id", "summary_detok"), what="summaries")
    pool = [
        {"narrative": text, "source": {"document_id": r["document_id"], "sentence_index": i}}
        for r in rows
        for i, text in narrative_segments(str(r["summary_detok"]))
    ]
    random.Random(seed).shuffle(pool)
    return pool


def build_curated(
    *, data_dir: str | Path | None = None, n: int = 2400, seed: int = 0
) -> list[dict[str, Any]]:
    """The curated NarrativeQA ⊕ SciQ rows (schema in ``docs/curated_schema.md``).

    Pure text: no model. Deterministic for given data files, ``n`` and ``seed``.

    Raises:
        FileNotFoundError: Data directory, SciQ CSV or NarrativeQA summaries missing.
        ValueError: ``n < 1`` or more rows asked for than distinct pairs exist.
    """
    root = resolve_data_dir(data_dir)
    sciq = _sciq_rows(root / SCIQ)
    pool = _narrative_pool(root / NARRATIVES, seed)
    if not sciq or not pool:
        raise ValueError("no eligible SciQ row or no narrative segment in the data")
    most = math.lcm(len(sciq), len(pool))
    if not 1 <= n <= most:
        raise ValueError(f"n must lie in [1, {most}] for these data; got {n}")
    rows = []
    for k in range(n):
        q, seg = sciq[k % len(sciq)], pool[k % len(pool)]
        rows.append(
            {
                "id": f"curated-{k:05d}",
                "narrative": seg["narrative"],
                "support": q["support"],
                "question": q["question"],
                "answer": q["answer"],
                "support_spans": [
                    list(s) for s in support_spans(q["support"], q["question"], q["answer"])
                ],
                "answer_spans": [list(s) for s in answer_spans(q["support"], q["answer"])],
                "sciq_index": q["sciq_index"],
                "narrative_source": seg["source"],
            }
        )
    return rows


def write_curated(path: str | Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write curated rows as JSON Lines (atomically: nothing is left on error)."""
    for number, row in enumerate(rows, start=1):
        validate_row(row, where=f"row {number}")
    return write_jsonl(path, rows)


REQUIRED = ("id", "narrative", "support", "question", "answer", "support_spans")


def _spans(value: Any, text: str, name: str, where: str) -> None:
    ok = isinstance(value, list) and all(
        isinstance(s, list | tuple)
        and len(s) == 2
        and all(isinstance(x, int) and not isinstance(x, bool) for x in s)
        and 0 <= s[0] < s[1] <= len(text)
        for s in value
    )
    if not ok:
        raise ValueError(f"{where}: {name} must be a list of [start, end) spans inside support")


def validate_row(row: dict[str, Any], *, where: str) -> None:
    """Check one curated row against the schema.

    Raises:
        ValueError: A required field is missing or has the wrong type, a span lies outside
            the support, or the answer does not occur in the support (``where`` prefixes the
            message, e.g. ``"file.jsonl:12"``).
    """
    missing = [k for k in REQUIRED if k not in row]
    if missing:
        raise ValueError(f"{where}: missing required field(s) {missing}")
    for key in ("id", "narrative", "support", "question", "answer"):
        if not isinstance(row[key], str) or not row[key].strip():
            raise ValueError(f"{where}: {key} must be a non-empty string")
    _spans(row["support_spans"], row["support"], "support_spans", where)
    if "answer_spans" in row:
        _spans(row["answer_spans"], row["support"], "answer_spans", where)


def read_curated(path: str | Path) -> list[dict[str, Any]]:
    """Read and validate a curated JSONL file (errors name the file and line number)."""
    file = Path(path)
    rows = read_jsonl(file, required_fields=REQUIRED, what="curated JSONL")
    lines = _line_numbers(file)
    ids: set[str] = set()
    for row, number in zip(rows, lines, strict=True):
        validate_row(row, where=f"{file}:{number}")
        if row["id"] in ids:
            raise ValueError(f"{file}:{number}: duplicate id {row['id']!r}")
        ids.add(row["id"])
    return rows


def _line_numbers(path: Path) -> list[int]:
    with path.open(encoding="utf-8") as handle:
        return [i for i, line in enumerate(handle, start=1) if line.strip()]


def default_rows(data_dir: str | Path | None) -> tuple[Path, Path]:
    """The two source files :func:`build_curated` reads (for cache keys)."""
    root = resolve_data_dir(data_dir)
    return require_file(root / SCIQ, what="SciQ CSV"), require_file(
        root / NARRATIVES, what="NarrativeQA summaries"
    )
