"""Evaluation protocols: the rules every method of a run is scored under (recorded per run).

A protocol fixes what the perturbation metrics may touch and what the normalisations run
over; it is the same for every method of a table (docs/evaluation.md, "One protocol for every
method"). Two are registered:

- ``legacy``: the rules of the runs stored before the protocol existed (evals/runs/ up to
  issue 25): Soft-NS/NC, ``hard_topk_kl`` and AOPC may mask every context position, BOS/sink
  included; every normalisation runs over the whole context; DSA normalises over the whole
  context. A ``run.json`` without a ``protocol`` entry is read as ``legacy``
  (:data:`STORED_DEFAULT`), so the stored tables stay reproducible and resumable.
- ``standard``: position 0 (BOS under TransformerLens's convention, and the attention sink in
  every model we run) is never perturbed and is excluded from every normalisation: Soft's
  masks always keep it (π_0 = 1 in every copy, the zero baseline p_0 included) and a is
  normalised over positions ≥ 1; ``hard_topk_kl`` and AOPC rank, count (k = ceil(f·(ctx−1)))
  and mask positions ≥ 1 only; F1 ranks positions ≥ 1 only; DSA normalises over the paragraph
  (narrative ∪ SciQ support segment), as the paper defines it; the sensitivity metric's
  embedding noise is part of each token's embedding on both backends (``legacy``: on a
  TransformerBridge it was added after ``hook_embed``, on top of replaced values).

Why ``standard`` is the default of new runs: HETA excludes position 0 by construction
(``HetaConfig.sink="exclude"``) while IG keeps 20–27 % of its mass there, last-layer
attention 22–50 % and rollout ~100 %; under ``legacy`` the metrics then measure what masking
the sink does (rollout's LongRA Soft-NS of 1.24 is that artefact) and DSA rewards mass moved
off the sink onto the question, neither of which is about the ranking of content tokens.
Scoring every method with the sink protected removes that difference between methods;
``legacy`` stays available (``--protocol legacy``) to reproduce the stored tables.
"""

from dataclasses import asdict, dataclass
from typing import Any, Literal

AlignmentNorm = Literal["context", "paragraph"]


@dataclass(frozen=True, kw_only=True)
class Protocol:
    """The fields in which protocols differ.

    Attributes:
        name: Registry name.
        protected: Leading context positions (0 or 1: the BOS/sink position) that no
            perturbation touches and no normalisation includes.
        dsa_over: What DSA normalises over: ``"context"`` (every context position not
            protected) or ``"paragraph"`` (narrative ∪ SciQ support segment).
        noise_replaceable: Where the sensitivity metric's embedding noise goes on a
            TransformerBridge: part of the token's embedding, before ``hook_embed`` (``True``),
            or after it, on top of replaced values (``False``, the stored runs'); see
            :mod:`heta_lens.evals.metrics.sensitivity`.
        description: One line for tables and ``--help``.
    """

    name: str
    protected: int
    dsa_over: AlignmentNorm
    noise_replaceable: bool
    description: str

    def __post_init__(self) -> None:
        if self.protected not in (0, 1):
            raise ValueError(f"protected must be 0 or 1 (the BOS/sink); got {self.protected}")
        if self.dsa_over not in ("context", "paragraph"):
            raise ValueError(f"dsa_over must be 'context' or 'paragraph'; got {self.dsa_over!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol(
            name="legacy",
            protected=0,
            dsa_over="context",
            noise_replaceable=False,
            description="stored runs before issue 25: BOS/sink maskable, DSA over the context",
        ),
        Protocol(
            name="standard",
            protected=1,
            dsa_over="paragraph",
            noise_replaceable=True,
            description="BOS/sink never masked nor normalised over; DSA over the paragraph",
        ),
    )
}
"""Registered protocols by name."""

DEFAULT_PROTOCOL = "standard"
"""The protocol of a new run (module docstring says why)."""

STORED_DEFAULT = "legacy"
"""The protocol of a stored ``run.json`` that records none (written before protocols)."""


def get_protocol(name: str) -> Protocol:
    """The registered protocol ``name``.

    Raises:
        ValueError: Unknown name (the message lists the registered ones).
    """
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; valid: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]
