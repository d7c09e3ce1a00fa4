"""The flat keywords of heta-lens ≤ 0.1, mapped onto :class:`~heta_lens.config.HetaConfig`'s types.

Until the typed sub-configs, ``HetaConfig`` was one flat dataclass (``n_probes``,
``curvature_estimator``, ``lowrank_rank``, ``window``, ``kl_strategy``, ...). That spelling stays
as a convenience — ``HetaConfig.flat(...)``, ``eval``'s ``heta_overrides`` and results saved
by older versions — and means exactly the typed config :func:`with_flat` builds. A keyword that
does not apply to the resulting config (``lowrank_rank`` with the exact estimator, an overlap
without windows) is refused, not ignored.
"""

from dataclasses import fields, replace
from typing import Any

from heta_lens.config import CURVATURE_TYPES, Curvature, HetaConfig, Hvp, Information, Window

TOP_LEVEL: tuple[str, ...] = tuple(
    f.name
    for f in fields(HetaConfig)
    if f.name not in ("curvature", "information", "window", "hvp")
)
"""Flat keywords that are ``HetaConfig`` fields themselves."""

NESTED: dict[str, tuple[str, str]] = {
    "mask": ("information", "mask"),
    "kl_strategy": ("information", "strategy"),
    "mask_chunk": ("information", "chunk"),
    "mask_memory_gb": ("information", "memory_gb"),
    "hvp_strategy": ("hvp", "strategy"),
    "hvp_chunk": ("hvp", "chunk"),
    "hvp_memory_gb": ("hvp", "memory_gb"),
}
"""Flat keyword → (sub-config, field) for the sub-configs every variant has."""

CURVATURE_KEYWORDS: dict[str, str] = {
    "n_probes": "n_probes",
    "lowrank_rank": "rank",
    "lowrank_scope": "scope",
    "layer_k": "k",
    "interactions": "interactions",
}
"""Flat keyword → field of the curvature type (each exists on the types it applies to)."""

WINDOW_KEYWORDS: dict[str, str] = {"window_overlap": "overlap", "window_view": "view"}

FLAT_FIELDS: tuple[str, ...] = (
    *TOP_LEVEL,
    *NESTED,
    "curvature_estimator",
    *CURVATURE_KEYWORDS,
    "window",
    *WINDOW_KEYWORDS,
)
"""Every flat keyword :func:`with_flat` accepts."""

_LEGACY_DEFAULTS: dict[str, object] = {
    "lowrank_rank": 64,
    "lowrank_scope": "block",
    "layer_k": 4,
    "window_overlap": 0.5,
    "window_view": "prefix",
}


def with_flat(config: HetaConfig, **flat: Any) -> HetaConfig:
    """``config`` with flat keywords applied (the others keep ``config``'s values).

    ``curvature_estimator`` switches the curvature type (keeping ``n_probes``); ``window=None``
    removes windowing, ``window=W`` sets W (keeping overlap and view when windows were on).
    Typed values pass through first (``curvature=RowBlock()``, ``window=Window(...)``, an
    ``information`` or ``hvp`` object), so ``with_flat(c, curvature=RowBlock(), n_probes=3)`` is
    ``RowBlock(n_probes=3)``.

    Raises:
        ValueError: An unknown keyword, or one that does not apply to the resulting config.

    Examples:
        >>> cfg = with_flat(HetaConfig(beta=0.8), curvature_estimator="lowrank", lowrank_rank=4)
        >>> cfg.beta, cfg.curvature
        (0.8, LowRank(rank=4, scope='block', n_probes=8))
    """
    flat = dict(flat)
    typed = {k: flat.pop(k) for k in ("curvature", "information", "hvp") if k in flat}
    if isinstance(flat.get("window"), Window):
        typed["window"] = flat.pop("window")
    config = replace(config, **typed)
    unknown = sorted(set(flat) - set(FLAT_FIELDS))
    if unknown:
        raise ValueError(f"unknown HetaConfig field(s) {unknown}; valid: {', '.join(FLAT_FIELDS)}")
    top: dict[str, Any] = {k: flat[k] for k in TOP_LEVEL if k in flat}
    for key, (part, name) in NESTED.items():
        if key in flat:
            top[part] = replace(top.get(part, getattr(config, part)), **{name: flat[key]})
    top["curvature"] = _curvature(config.curvature, flat)
    top["window"] = _window(config.window, flat)
    return replace(config, **top)


def _curvature(current: Curvature, flat: dict[str, Any]) -> Curvature:
    name = flat.get("curvature_estimator", current.estimator)
    if name not in CURVATURE_TYPES:
        raise ValueError(
            f"unknown curvature_estimator {name!r}; valid: {', '.join(CURVATURE_TYPES)}"
        )
    kind = CURVATURE_TYPES[name]
    own = {f.name for f in fields(kind)}
    keep = {k: v for k, v in vars(current).items() if k in own} if kind is type(current) else {}
    keep.setdefault("n_probes", current.n_probes)
    for key, name_on_type in CURVATURE_KEYWORDS.items():
        if key not in flat:
            continue
        if name_on_type not in own:
            raise ValueError(f"{key} does not apply to curvature_estimator={kind.estimator!r}")
        keep[name_on_type] = flat[key]
    return kind(**keep)


def _window(current: Window | None, flat: dict[str, Any]) -> Window | None:
    size = flat.get("window", None if current is None else current.size)
    options = {name: flat[key] for key, name in WINDOW_KEYWORDS.items() if key in flat}
    if size is None:
        if options:
            given = sorted(key for key in WINDOW_KEYWORDS if key in flat)
            raise ValueError(f"{', '.join(given)} need window=<size>")
        return None
    if current is None:
        return Window(size=size, **options)
    return replace(current, size=size, **options)


def config_from_dict(data: dict[str, Any]) -> HetaConfig:
    """A config from :meth:`HetaConfig.to_dict` output, or from an older version's flat dict.

    A flat dict saved before the typed sub-configs holds every field, the inert ones (a rank
    under the exact estimator, an overlap without windows) at their defaults; those are dropped.

    Raises:
        ValueError: Unknown fields, or a flat dict whose inert fields were set.
    """
    if isinstance(data.get("curvature"), dict):
        curvature = dict(data["curvature"])
        kind = CURVATURE_TYPES.get(curvature.pop("estimator", "exact"))
        if kind is None:
            raise ValueError(f"unknown curvature estimator in {data['curvature']!r}")
        window = data.get("window")
        return HetaConfig(
            **{k: data[k] for k in TOP_LEVEL if k in data},
            curvature=kind(**curvature),
            information=Information(**data.get("information", {})),
            window=None if window is None else Window(**window),
            hvp=Hvp(**data.get("hvp", {})),
        )
    flat = dict(data)
    kind = CURVATURE_TYPES.get(flat.get("curvature_estimator", "exact"))
    own = set() if kind is None else {f.name for f in fields(kind)}
    for key, default in _LEGACY_DEFAULTS.items():
        applies = (
            CURVATURE_KEYWORDS[key] in own
            if key in CURVATURE_KEYWORDS
            else flat.get("window") is not None
        )
        if key in flat and not applies and flat[key] == default:
            del flat[key]
    return with_flat(HetaConfig(), **flat)
