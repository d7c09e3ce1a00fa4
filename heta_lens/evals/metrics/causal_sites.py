"""Intervention sites of the causal metrics: their names, and the patched forwards.

A site name (``EvalSettings.causal_sites``, ``heta-lens eval --causal-site``) is one of

- ``embed``: the input embedding of position i (``hook_embed``); the default, and the only
  site of the runs stored before sites existed.
- ``resid:<L>``: the residual stream of position i entering block L
  (``blocks.{L}.hook_resid_pre``); ``mid`` is ``resid:<n_layers // 2>``.
- ``edges``: the attention edges i → q (q the readout position, the last of the context): in
  every layer and head, q reads position i's key and value from the corrupted run
  (:mod:`heta_lens.hooks.patching`).

Why this reading of "the edges i → q": it is path patching of the edges from sender i into
receiver q, where the receiver's key and value inputs from the sender are patched, and the
softmax is renormalised with the corrupted key. Rejected: replacing the term A[q,i]·v_i by the
corrupted run's A′[q,i]·v′_i takes A′ from a run where q's *query* is also corrupted (through
every path, not the edge) and leaves attention weights that no longer sum to 1; patching v_i
alone keeps A[q,i] clean and so misses what the token's key does to the attention.

Every site uses the same corrupted run: a full forward with position i's embedding corrupted
(:mod:`heta_lens.evals.metrics.causal`); the site says which of its activations are patched
into the clean run, at position i only.
"""

import re

from jaxtyping import Bool, Float
from torch import Tensor

from heta_lens.evals.metrics._common import batch_log_probs
from heta_lens.hooks import ModelAdapter
from heta_lens.hooks.patching import PatchSite, clean_points, patching, read_points, reading
from heta_lens.inputs import Prepared

EMBED_SITE = "embed"
"""The site of the stored causal runs; its metric keys carry no ``@site`` suffix."""

_SITE = re.compile(r"embed|mid|edges|resid:\d+")


def check_site(site: str) -> str:
    """Validate a site name (``embed``, ``mid``, ``edges`` or ``resid:<layer>``).

    Raises:
        ValueError: Anything else (the message lists the valid forms).
    """
    if _SITE.fullmatch(site):
        return site
    raise ValueError(f"unknown causal site {site!r}; valid: embed, mid, edges, resid:<layer>")


def check_sites(sites: tuple[str, ...]) -> tuple[str, ...]:
    """Validate a non-empty tuple of distinct site names."""
    if not sites:
        raise ValueError("causal_sites must name at least one site")
    if len(set(sites)) != len(sites):
        raise ValueError(f"causal_sites repeats a site: {list(sites)}")
    for site in sites:
        check_site(site)
    return sites


def resolve_site(site: str, n_layers: int) -> PatchSite:
    """The :class:`~heta_lens.hooks.patching.PatchSite` of ``site`` on a model of ``n_layers``.

    Raises:
        ValueError: Unknown name, or a ``resid`` layer outside the model.

    Examples:
        >>> resolve_site("mid", 30), resolve_site("resid:3", 30).layer
        (PatchSite(kind='resid', layer=15), 3)
    """
    check_site(site)
    if site == "embed":
        return PatchSite(kind="embed")
    if site == "edges":
        return PatchSite(kind="edges")
    layer = n_layers // 2 if site == "mid" else int(site.split(":", 1)[1])
    if layer >= n_layers:
        raise ValueError(f"causal site {site!r}: the model has {n_layers} layers")
    return PatchSite(kind="resid", layer=layer)


def metric_key(metric: str, site: str) -> str:
    """Row key of ``metric`` at ``site``: ``metric`` for ``embed``, else ``metric@site``."""
    return metric if site == EMBED_SITE else f"{metric}@{site}"


def clean_log_probs(
    adapter: ModelAdapter, req: Prepared, x: Float[Tensor, "ctx d_model"], site: PatchSite
) -> tuple[Tensor, dict[str, Tensor]]:
    """Log-probabilities of the clean run and the clean activations ``site`` restores.

    For ``embed`` and ``resid`` this is the plain clean forward (nothing is hooked).
    """
    points = clean_points(site, adapter.n_layers)
    if not points:
        return batch_log_probs(adapter, req, x[None])[0], {}
    with reading(adapter, points, None) as clean:
        log_p = batch_log_probs(adapter, req, x[None])[0]
    return log_p, clean


def clean_states(
    adapter: ModelAdapter, req: Prepared, x: Float[Tensor, "ctx d_model"], site: PatchSite
) -> dict[str, Tensor]:
    """The clean activations ``site`` restores (a clean forward for ``edges``; else none)."""
    if not clean_points(site, adapter.n_layers):
        return {}
    return clean_log_probs(adapter, req, x, site)[1]


def patched_log_probs(
    adapter: ModelAdapter,
    req: Prepared,
    x: Float[Tensor, "ctx d_model"],
    corrupted: Float[Tensor, "batch ctx d_model"],
    drop: Bool[Tensor, "batch ctx"],
    *,
    site: PatchSite,
    clean: dict[str, Tensor],
) -> Float[Tensor, "batch d_vocab"]:
    """Row b: the clean run with the site's activations at ``drop[b]`` taken from the
    corrupted run ``corrupted[b]`` (input embeddings with those positions corrupted).

    ``embed``: the corrupted embeddings are the patch (one forward). ``resid`` and ``edges``:
    a forward of the corrupted embeddings reads the site, a forward of the clean ones
    patches it in.
    """
    if site.kind == "embed":
        return batch_log_probs(adapter, req, corrupted)
    with reading(adapter, read_points(site, adapter.n_layers), drop) as acts:
        batch_log_probs(adapter, req, corrupted)
    rows = x[None].expand(drop.shape[0], -1, -1)
    with patching(adapter, acts, drop, clean=clean):
        return batch_log_probs(adapter, req, rows)
