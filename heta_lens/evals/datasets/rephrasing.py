"""Active/passive rephrasing pairs for the rephrasing-robustness eval (docs/evaluation.md).

Each pair says the same thing twice,

    active : "Yesterday the teacher carefully cleaned the boat near the old station"
    passive: "Yesterday the boat was carefully cleaned by the teacher near the old station"

with the same final word (the target, teacher-forced: its first token is explained from the
words before it) and six aligned content words (time word, agent, adverb, verb, patient,
adjective) that occur once in each sentence. Verbs are regular, so the past tense and the past
participle are the same word. :func:`build_pairs` generates the set deterministically from the
word lists below (60 pairs); the committed ``data/rephrasing_pairs.jsonl`` is its output (a
test checks they agree), so the data can be read without running code.

Rephrasing robustness of a method (:func:`rephrasing_rho`): per pair, the score of each aligned
word (sum over its tokens) in both sentences, then Spearman ρ between the two 6-vectors
(average ranks for ties); reported as the mean over pairs.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from heta_lens.evals.datasets.align import encode_aligned
from heta_lens.evals.datasets.base import EvalInstance
from heta_lens.evals.datasets.jsonl import read_jsonl
from heta_lens.evals.metrics.rank import spearman
from heta_lens.hooks import ModelAdapter

PAIRS_PATH = Path(__file__).with_name("data") / "rephrasing_pairs.jsonl"
DATASET = "rephrasing"

TIMES = ("Yesterday", "Today", "Recently")
AGENTS = (
    "teacher", "doctor", "farmer", "pilot", "lawyer", "painter", "soldier", "student", "chef",
    "nurse",
)  # fmt: skip
ADVERBS = ("carefully", "quickly", "quietly", "slowly", "proudly", "gently")
VERBS = (
    "cleaned", "painted", "repaired", "moved", "checked", "carried", "watched", "photographed",
    "described", "measured",
)  # fmt: skip
PATIENTS = (
    "boat", "window", "fence", "car", "table", "piano", "statue", "wagon", "door", "bicycle",
)  # fmt: skip
PLACES = (
    ("old", "station"), ("small", "village"), ("quiet", "harbor"), ("busy", "market"),
    ("empty", "church"), ("green", "valley"),
)  # fmt: skip


def build_pairs(n: int = 60) -> list[dict[str, Any]]:
    """The deterministic pair set (see the module docstring).

    Pair k uses time ``k % 3``, agent ``k % 10``, adverb ``k % 6``, verb ``(3k + 1) % 10``,
    patient ``(7k + 2) % 10`` and place ``(k // 10) % 6``.

    Examples:
        >>> build_pairs(1)[0]["passive"]
        'Yesterday the fence was carefully painted by the teacher near the old station'
    """
    pairs = []
    for k in range(n):
        time, agent, adverb = TIMES[k % 3], AGENTS[k % 10], ADVERBS[k % 6]
        verb, patient = VERBS[(3 * k + 1) % 10], PATIENTS[(7 * k + 2) % 10]
        adjective, place = PLACES[(k // 10) % 6]
        tail = f"near the {adjective} {place}"
        pairs.append(
            {
                "uid": f"{DATASET}/{k:03d}",
                "active": f"{time} the {agent} {adverb} {verb} the {patient} {tail}",
                "passive": f"{time} the {patient} was {adverb} {verb} by the {agent} {tail}",
                "target": place,
                "aligned": [time, agent, adverb, verb, patient, adjective],
            }
        )
    return pairs


def read_pairs(path: str | Path | None = None) -> list[dict[str, Any]]:
    """The committed pairs (or a file in the same format)."""
    return read_jsonl(Path(path) if path is not None else PAIRS_PATH)


def _word_span(text: str, word: str, *, last: bool = False) -> tuple[int, int]:
    """Character span of ``word`` as a whole word (the first, or the last, occurrence)."""
    padded = f" {text} "
    needle = f" {word} "
    index = padded.rfind(needle) if last else padded.find(needle)
    if index < 0:
        raise ValueError(f"word {word!r} not found in {text!r}")
    return index, index + len(word)  # padded index + 1 for the space, − 1 for the padding


def pair_instances(model: nn.Module, pair: Mapping[str, Any]) -> tuple[EvalInstance, ...]:
    """The active and passive sentences of ``pair`` as instances for ``model``.

    The target is the first token of the final word; ``regions`` holds ``word:<w>`` (the
    token positions of each aligned word), ``meta`` the pair uid and the form.

    Raises:
        ValueError: A word is missing from a sentence or shares a token with another.
    """
    adapter = ModelAdapter(model)
    out = []
    for form in ("active", "passive"):
        text = str(pair[form])
        encoded = encode_aligned(adapter, text)
        target = encoded.overlapping(*_word_span(text, str(pair["target"]), last=True))[0]
        regions = {}
        for word in pair["aligned"]:
            positions = encoded.overlapping(*_word_span(text, str(word)))
            if not positions or positions[-1] >= target:
                raise ValueError(f"{pair['uid']} {form}: word {word!r} has no context token")
            regions[f"word:{word}"] = positions
        seen = [p for positions in regions.values() for p in positions]
        if len(seen) != len(set(seen)):
            raise ValueError(f"{pair['uid']} {form}: two aligned words share a token")
        out.append(
            EvalInstance(
                uid=f"{pair['uid']}/{form}",
                dataset=DATASET,
                text=text,
                tokens=encoded.ids[: target + 1],
                targets=(target,),
                regions=regions,
                meta={"pair": pair["uid"], "form": form, "aligned": list(pair["aligned"])},
            )
        )
    return tuple(out)


def load_rephrasing(
    model: nn.Module, *, path: str | Path | None = None, limit: int | None = None
) -> list[EvalInstance]:
    """Instances of the first ``limit`` pairs (active then passive for each pair)."""
    pairs = read_pairs(path)[:limit]
    return [instance for pair in pairs for instance in pair_instances(model, pair)]


def word_scores(instance: EvalInstance, scores: Sequence[float] | Tensor) -> Tensor:
    """Score of each aligned word of ``instance`` (sum over its tokens), in aligned order."""
    values = torch.as_tensor(scores, dtype=torch.float64)
    return torch.stack(
        [values[list(instance.regions[f"word:{w}"])].sum() for w in instance.meta["aligned"]]
    )


def rephrasing_rho(
    active: EvalInstance,
    active_scores: Sequence[float] | Tensor,
    passive: EvalInstance,
    passive_scores: Sequence[float] | Tensor,
) -> float:
    """Spearman ρ between the aligned words' scores in the two sentences of one pair.

    Raises:
        ValueError: The instances are not the two forms of one pair.
    """
    if active.meta.get("pair") != passive.meta.get("pair") or active.meta.get(
        "aligned"
    ) != passive.meta.get("aligned"):
        raise ValueError(f"{active.uid} and {passive.uid} are not the two forms of one pair")
    return spearman(word_scores(active, active_scores), word_scores(passive, passive_scores))
