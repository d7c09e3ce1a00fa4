"""Sequence-level prompts (ReAGent's TellMeWhy and wikitext sets): greedy continuations.

Each prompt is extended by ``n_generate`` greedy tokens (:func:`heta_lens.targets.
greedy_generate`: argmax, no sampling, no early stop at EOS) and every ``every``-th generated
token is explained. With ReAGent's 10 tokens and "every second" token, the targets are the
2nd, 4th, 6th, 8th and 10th generated tokens: positions ``start + 1, start + 3, ...,
start + 9`` where ``start`` is the number of prompt tokens (BOS included). We take the 2nd
rather than the 1st so that every explained token follows at least one generated token (the
sequence-level setting: context = prompt + the model's own earlier output).

Prompt files (``reagent/sequence_level/``, one prompt per line, surrounding whitespace
stripped, blank lines skipped):

- ``tellmewhy``: ``tellmewhy_evaluated25_reconstructed.txt``, the 25 prompts ReAGent's
  published TellMeWhy numbers were computed on (default), or ``tellmewhy2.txt`` (the 20
  prompts the ReAGent README names) with ``tellmewhy_file="tellmewhy2"``.
- ``wikitext``: ``wikitext.txt`` (22 Wikipedia openings). It STANDS IN FOR WikiBio: the
  SelfCheckGPT WikiBio set ReAGent's paper reports could not be obtained, and ReAGent's own
  code runs on these wikitext prompts; tables must say so.
"""

from pathlib import Path
from typing import Any, Literal

from torch import nn
from tqdm.auto import tqdm

from heta_lens._typing import typechecked
from heta_lens.evals.datasets.base import (
    EvalInstance,
    FilterStats,
    check_limit,
    require_file,
    resolve_data_dir,
)
from heta_lens.evals.datasets.cache import cached_load, file_digest, model_fingerprint
from heta_lens.hooks import ModelAdapter
from heta_lens.targets import greedy_generate

SequenceName = Literal["tellmewhy", "wikitext"]
PROMPT_DIR = Path("reagent") / "sequence_level"
PROMPT_FILES = {
    "evaluated25": "tellmewhy_evaluated25_reconstructed.txt",
    "tellmewhy2": "tellmewhy2.txt",
    "wikitext": "wikitext.txt",
}
DROP_LONG = "prompt + generation longer than n_ctx"


def read_prompts(path: Path) -> list[str]:
    """Non-blank lines of a prompt file, surrounding whitespace stripped.

    Raises:
        FileNotFoundError: The file is missing (the message names ``--data-dir``).
        ValueError: The file holds no prompt.
    """
    lines = require_file(path, what="prompt file").read_text(encoding="utf-8").splitlines()
    prompts = [line.strip() for line in lines if line.strip()]
    if not prompts:
        raise ValueError(f"{path} holds no prompt (expected one prompt per line)")
    return prompts


def sequence_targets(start: int, *, n_generate: int, every: int) -> tuple[int, ...]:
    """Positions of every ``every``-th generated token: ``start + every - 1``, ``+ every``, ...

    ``start`` is the position of the first generated token (the prompt length). With
    ``n_generate=10, every=2``: ``start+1, start+3, start+5, start+7, start+9``.

    Raises:
        ValueError: ``start < 1``, ``n_generate < 1`` or ``every`` not in ``[1, n_generate]``.
    """
    if start < 1 or n_generate < 1 or not 1 <= every <= n_generate:
        raise ValueError(
            f"need start >= 1, n_generate >= 1 and 1 <= every <= n_generate; got start={start}, "
            f"n_generate={n_generate}, every={every}"
        )
    return tuple(range(start + every - 1, start + n_generate, every))


def _instance(
    model: nn.Module, prompt: str, *, uid: str, name: str, n_generate: int, every: int
) -> EvalInstance | None:
    adapter = ModelAdapter(model)
    prompt_ids = adapter.to_tokens(prompt)
    start = int(prompt_ids.numel())
    if start + n_generate > adapter.n_ctx:
        return None
    ids, _ = greedy_generate(model, prompt_ids, max_new_tokens=n_generate)
    tokenizer: Any = adapter.tokenizer
    continuation = str(tokenizer.decode(ids[start:].tolist()))
    return EvalInstance(
        uid=uid,
        dataset=name,
        text=prompt + continuation,
        tokens=tuple(int(t) for t in ids.tolist()),
        targets=sequence_targets(start, n_generate=n_generate, every=every),
        meta={"prompt": prompt, "continuation": continuation, "n_prompt_tokens": start},
    )


@typechecked
def load_sequence(
    model: nn.Module,
    name: SequenceName,
    *,
    data_dir: str | Path | None = None,
    limit: int | None = None,
    n_generate: int = 10,
    every: int = 2,
    tellmewhy_file: Literal["evaluated25", "tellmewhy2"] = "evaluated25",
    progress: bool = True,
) -> list[EvalInstance]:
    """Sequence-level instances: each prompt plus its greedy continuation, 5 targets each.

    See the module docstring for the files, the targets (``start+1, start+3, ...``) and the
    wikitext-for-WikiBio substitution. ``uid`` = ``"<name>-<line index>"`` (``tellmewhy2-…``
    for the alternative file). Cached under ``cache_dir()/evals``.

    Args:
        model: A ``HookedTransformer`` or ``TransformerBridge`` with a tokenizer.
        name: ``"tellmewhy"`` or ``"wikitext"``.
        data_dir: Data root (default :func:`heta_lens.models.default_data_dir`).
        limit: The first ``limit`` instances only (prompts in file order).
        n_generate: Greedy tokens generated per prompt (ReAGent: 10).
        every: Explain every ``every``-th generated token (ReAGent: 2).
        tellmewhy_file: ``"evaluated25"`` (default) or ``"tellmewhy2"``.
        progress: Show a progress bar while generating.

    Raises:
        FileNotFoundError: Data directory or prompt file missing.
        ValueError: Bad options, or no prompt fits the model's context.
    """
    check_limit(limit)
    sequence_targets(1, n_generate=n_generate, every=every)  # validates the options
    if name not in ("tellmewhy", "wikitext"):
        raise ValueError(f"unknown sequence dataset {name!r}; valid: tellmewhy, wikitext")
    file_key = tellmewhy_file if name == "tellmewhy" else "wikitext"
    path = require_file(resolve_data_dir(data_dir) / PROMPT_DIR / PROMPT_FILES[file_key], what=name)
    prefix = "tellmewhy2" if file_key == "tellmewhy2" else name
    key = {
        "fingerprint": model_fingerprint(model),
        "data": file_digest(path),
        "n_generate": n_generate,
        "every": every,
    }

    def compute(lim: int | None) -> tuple[list[EvalInstance], FilterStats]:
        prompts = read_prompts(path)
        kept: list[EvalInstance] = []
        examined = 0
        for i, prompt in enumerate(tqdm(prompts, desc=name, disable=not progress, leave=False)):
            if lim is not None and len(kept) >= lim:
                break
            examined += 1
            uid = f"{prefix}-{i:03d}"
            inst = _instance(model, prompt, uid=uid, name=name, n_generate=n_generate, every=every)
            if inst is not None:
                kept.append(inst)
        if not kept:
            raise ValueError(f"no {name} prompt fits the model context with {n_generate} tokens")
        stats = FilterStats(
            dataset=prefix,
            n_candidates=examined,
            n_kept=len(kept),
            dropped={DROP_LONG: examined - len(kept)},
            options={"n_generate": n_generate, "every": every, "limit": lim},
        )
        return kept, stats

    return cached_load(prefix, key, compute, limit=limit)[0]
