"""HETA variants scored from a stored run's rows, with the live method's own combine function.

A run that stores ``heta_hessian_only``, ``heta_kl_only`` and ``heta_no_gate`` (same seeds,
weights β₀, γ₀, sum normalisation) holds, per context position i,

- h_i = G_i·β₀·S'_i (Hessian-only), k_i = G_i·γ₀·I'_i (KL-only), n_i = β₀·S'_i + γ₀·I'_i
  (no gate),

so wherever n_i > 0: G_i = (h_i + k_i) / n_i, and where G_i > 0: S'_i = h_i / (β₀·G_i),
I'_i = k_i / (γ₀·G_i). At the excluded sink (G_0 = 0) S'_0 and I'_0 are not in the products;
as S' and I' each sum to 1 over the context, the one position with G = 0 gets
S'_0 = 1 − Σ_{i≠0} S'_i (likewise I'_0), checked against n_0. Any variant of the form
G·f(S', I') — another mix (:func:`heta_lens.scoring.combine`), max instead of sum
normalisation, other β/γ — is then scored by :func:`variant_scores` with the same functions the
live method uses (:func:`heta_lens.scoring.normalize`, :func:`~heta_lens.scoring.combine`):
no HVPs and no masked reruns. The derived scores equal the live variant's up to the round-off
of the stored (float32, JSON) scores.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from heta_lens.config import HetaConfig
from heta_lens.scoring import combine, normalize

SOURCE_METHODS: tuple[str, ...] = ("heta_hessian_only", "heta_kl_only", "heta_no_gate")
"""The stored rows a derivation needs (one of each per target)."""

COMBINING_FIELDS: tuple[str, ...] = ("beta", "gamma", "mix", "normalization")
"""The :class:`HetaConfig` fields a derived variant may change; every other one fixes G, S, I."""

CONSISTENCY_RTOL = 1e-4
"""Relative tolerance of the check β₀·S'_0 + γ₀·I'_0 = n_0 at the reconstructed position: the
stored scores are float32 (relative round-off ~6e-8 each, summed over up to ~1,000 positions
in 1 − Σ), so 1e-4 of n_0 (or of max n, when n_0 is tiny) flags only rows that are not HETA's."""


@dataclass(frozen=True, kw_only=True)
class StoredTerms:
    """G, S', I' rebuilt from one target's stored rows (float64).

    Attributes:
        gate_term: G (0 at the excluded sink).
        curvature_term: S' (sum-normalised curvature; at a position with G = 0 rebuilt from
            the sum, see the module docstring).
        information_term: I' (sum-normalised information, likewise).
        complete: Whether S' and I' are known at every position (at most one position has
            G = 0); max normalisation needs them everywhere.
    """

    gate_term: Tensor
    curvature_term: Tensor
    information_term: Tensor
    complete: bool


def _row_scores(rows: Mapping[str, Mapping[str, Any]], where: str) -> list[Tensor]:
    missing = [m for m in SOURCE_METHODS if m not in rows]
    if missing:
        raise ValueError(
            f"{where}: deriving HETA variants needs the rows of {', '.join(SOURCE_METHODS)}; "
            f"missing {', '.join(missing)}"
        )
    scores = [torch.tensor(rows[m]["scores"], dtype=torch.float64) for m in SOURCE_METHODS]
    if len({s.numel() for s in scores}) != 1:
        raise ValueError(f"{where}: the source rows have different context lengths")
    return scores


def terms_from_rows(
    rows: Mapping[str, Mapping[str, Any]], *, beta: float = 0.5, gamma: float = 0.5
) -> StoredTerms:
    """Rebuild G, S', I' of one target from its stored rows (module docstring).

    Args:
        rows: Method name → stored row (``scores`` list) of one (uid, target); must hold
            :data:`SOURCE_METHODS`.
        beta: The weight β₀ the rows were computed with.
        gamma: The weight γ₀ the rows were computed with.

    Returns:
        :class:`StoredTerms`.

    Raises:
        ValueError: A source row missing, rows of different lengths, β₀ or γ₀ not positive,
            a position where the no-gate row is 0 but the gated rows are not (or the gate
            cannot be recovered), or a rebuilt sink value inconsistent with the no-gate row.
    """
    first = next(iter(rows.values()), {})
    where = f"target {first.get('uid')}|{first.get('target')}"
    if beta <= 0 or gamma <= 0:
        raise ValueError(f"recovering S' and I' needs beta, gamma > 0; got {beta}, {gamma}")
    h, k, n = _row_scores(rows, where)
    gated = h + k
    if bool(((n <= 0) & (gated != 0)).any()) or bool((n < 0).any()):
        raise ValueError(f"{where}: the no-gate row is not β₀·S' + γ₀·I' of the gated rows")
    if bool(((n == 0) & (torch.arange(n.numel()) > 0)).any()):
        raise ValueError(f"{where}: S' = I' = 0 at a position > 0, where G cannot be recovered")
    gate = torch.where(n > 0, gated / n.clamp_min(torch.finfo(n.dtype).tiny), 0.0)
    kept = gate > 0
    safe = torch.where(kept, gate, 1.0)
    s = torch.where(kept, h / (beta * safe), 0.0)
    i = torch.where(kept, k / (gamma * safe), 0.0)
    unknown = (~kept).nonzero().flatten()
    complete = unknown.numel() <= 1
    if unknown.numel() == 1:
        j = int(unknown[0])
        s[j], i[j] = (1.0 - s.sum()).clamp_min(0.0), (1.0 - i.sum()).clamp_min(0.0)
        scale = max(float(n[j]), float(n.max()) * 1e-3)
        if abs(beta * float(s[j]) + gamma * float(i[j]) - float(n[j])) > CONSISTENCY_RTOL * scale:
            raise ValueError(
                f"{where}: rebuilt S'/I' at position {j} disagree with the no-gate row"
            )
    return StoredTerms(gate_term=gate, curvature_term=s, information_term=i, complete=complete)


def check_derivable(config: HetaConfig, stored: HetaConfig) -> None:
    """Raise unless ``config`` differs from ``stored`` only in :data:`COMBINING_FIELDS`.

    Raises:
        ValueError: ``config`` changes the gate, the curvature or information computation,
            the sink policy, windowing or switches a term off; or asks for
            ``normalization="none"`` (the raw scales are not in the rows).
    """
    same = replace(config, **{f: getattr(stored, f) for f in COMBINING_FIELDS})
    if same != stored:
        raise ValueError(
            "only beta, gamma, mix and normalization can be derived from stored rows; the "
            "variant's config differs from the run's HETA config in other fields"
        )
    if config.normalization == "none":
        raise ValueError("normalization='none' needs the raw S and I, which the rows do not hold")


def variant_scores(terms: StoredTerms, config: HetaConfig) -> Float[Tensor, " ctx"]:
    """A variant's scores from rebuilt terms, as the live method combines them.

    Args:
        terms: :func:`terms_from_rows` of one target.
        config: The variant's config (checked with :func:`check_derivable` by the caller).

    Returns:
        G · mix(norm(S'), norm(I')) with ``config``'s weights, mix and normalisation.

    Raises:
        ValueError: Max normalisation with S'/I' unknown at some position.
    """
    s, i = terms.curvature_term, terms.information_term
    if config.normalization != "sum":
        if not terms.complete:
            raise ValueError("max normalisation needs S' and I' at every position")
        s, i = normalize(s, config.normalization), normalize(i, config.normalization)
    return combine(terms.gate_term, s, i, beta=config.beta, gamma=config.gamma, mix=config.mix)


def derived_row(
    rows: Mapping[str, Mapping[str, Any]], *, name: str, config: HetaConfig, stored: HetaConfig
) -> dict[str, Any]:
    """A stored-run row of variant ``name`` for one target (metrics empty, to be rescored).

    Raises:
        ValueError: As :func:`terms_from_rows` and :func:`check_derivable`.
    """
    check_derivable(config, stored)
    terms = terms_from_rows(rows, beta=stored.beta, gamma=stored.gamma)
    base = rows[SOURCE_METHODS[0]]
    keep = ("uid", "dataset", "target", "ctx", "target_token", "target_log_prob")
    out = {k: base[k] for k in keep if k in base}
    return {
        "key": f"{base['uid']}|{base['target']}|{name}",
        **out,
        "method": name,
        "seconds": 0.0,
        "seconds_shared": True,
        "scores": [float(x) for x in variant_scores(terms, config)],
        "metrics": {},
        "curves": {},
    }


def derived_rows(
    rows: Sequence[Mapping[str, Any]],
    *,
    variants: Mapping[str, HetaConfig],
    stored: HetaConfig,
) -> list[dict[str, Any]]:
    """:func:`derived_row` of every variant for every target of ``rows`` (a stored run's).

    Args:
        rows: Stored rows (every method; only :data:`SOURCE_METHODS` are read).
        variants: Variant name → its config (the run's preset applied, like the runner does).
        stored: The run's ``heta`` config (β₀, γ₀ and what fixes G, S, I).

    Returns:
        One row per (target, variant), targets in stored order.

    Raises:
        ValueError: As :func:`derived_row` (a target lacking a source row included).
    """
    for config in variants.values():
        check_derivable(config, stored)
    by_target: dict[tuple[str, int], dict[str, Mapping[str, Any]]] = {}
    for row in rows:
        by_target.setdefault((row["uid"], row["target"]), {})[row["method"]] = row
    return [
        derived_row(group, name=name, config=config, stored=stored)
        for group in by_target.values()
        for name, config in variants.items()
    ]
