"""Activation patching at an intervention site: read a corrupted run, write it into a clean one.

The causal-validity metrics (:mod:`heta_lens.evals.metrics.causal`) measure what a context
position contributes by patching it, taken from a corrupted run, into the clean run. Where
the patch is made is the :class:`PatchSite`:

- ``embed``: the position's input embedding (``hook_embed``). Nothing to read here: the
  corrupted rows *are* the patch (the metric replaces them directly).
- ``resid`` at layer L: the residual stream of the position entering block L
  (``blocks.{L}.hook_resid_pre``), read from the corrupted run.
- ``edges``: the attention edges from the position into the readout position q (the last
  one). In every layer and head, query q reads the position's key and value from the corrupted
  run; every other position keeps its clean state, so what is patched reaches q through its
  own attention only. Hooks: at every layer the position's ``attn.hook_k`` and ``attn.hook_v``
  rows are replaced by the corrupted run's (for every query), and every position but q has its
  block output (``hook_resid_post``) put back to the clean run's, which undoes what the
  replaced keys and values did to the other queries before any later layer reads them.

A batch row b patches the positions marked in ``drop[b]``; its corrupted run is row b of the
forward inside :func:`reading`, so different rows can patch different positions at once.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from jaxtyping import Bool
from torch import Tensor

from heta_lens.hooks import names
from heta_lens.hooks.adapter import ModelAdapter

SiteKind = Literal["embed", "resid", "edges"]
SITE_KINDS: tuple[SiteKind, ...] = ("embed", "resid", "edges")


@dataclass(frozen=True, kw_only=True)
class PatchSite:
    """Where a position's contribution is patched (module docstring).

    Attributes:
        kind: ``"embed"``, ``"resid"`` or ``"edges"``.
        layer: The block whose input residual is patched (``"resid"`` only).
    """

    kind: SiteKind
    layer: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in SITE_KINDS:
            raise ValueError(f"unknown site kind {self.kind!r}; valid: {', '.join(SITE_KINDS)}")
        if (self.kind == "resid") != (self.layer is not None):
            raise ValueError("a layer goes with the 'resid' site, and only with it")
        if self.layer is not None and self.layer < 0:
            raise ValueError(f"layer must be >= 0; got {self.layer}")


def read_points(site: PatchSite, n_layers: int) -> list[str]:
    """Hook points whose corrupted-run values are patched in (none for ``embed``).

    Raises:
        ValueError: The site's layer is not a block of the model.
    """
    if site.kind == "resid" and site.layer is not None:  # a resid site always has a layer
        if site.layer >= n_layers:
            raise ValueError(f"layer {site.layer} out of range for a model with {n_layers} layers")
        return [names.resid_pre(site.layer)]
    if site.kind == "edges":
        return [p for layer in range(n_layers) for p in (names.attn_k(layer), names.attn_v(layer))]
    return []


def clean_points(site: PatchSite, n_layers: int) -> list[str]:
    """Hook points whose clean-run values the patched run restores (``edges``: every block's
    output, at every position but the readout)."""
    if site.kind == "edges":
        return [names.resid_post(layer) for layer in range(n_layers)]
    return []


def _fired(adapter: ModelAdapter, wanted: list[str], seen: set[str]) -> None:
    missing = [name for name in wanted if name not in seen]
    if missing:
        raise ValueError(
            f"unsupported architecture {adapter.architecture}: hook points {missing[:2]} did "
            "not fire; this patching site needs them"
        )


@contextmanager
def reading(
    adapter: ModelAdapter, points: list[str], drop: Bool[Tensor, "batch pos"] | None
) -> Iterator[dict[str, Tensor]]:
    """Within the block, each forward stores the activations of ``points``.

    Stored per point: ``act[drop]`` (the rows of the marked positions, in row-major order,
    ``[n_marked, ...]``), or with ``drop=None`` the activation of a batch of one, ``[pos, ...]``.

    Raises:
        ValueError: A point did not fire (checked when the block ends without error).
    """
    store: dict[str, Tensor] = {}

    def keeper(name: str) -> Callable[..., Tensor]:
        def keep(act: Tensor, hook: object) -> Tensor:  # noqa: ARG001
            kept = act[0] if drop is None else act[drop.to(act.device)]
            store[name] = kept.detach()
            return act

        return keep

    with adapter.model.hooks(fwd_hooks=[(name, keeper(name)) for name in points]):
        yield store
    _fired(adapter, points, set(store))


@contextmanager
def patching(
    adapter: ModelAdapter,
    corrupted: dict[str, Tensor],
    drop: Bool[Tensor, "batch pos"],
    *,
    clean: dict[str, Tensor] | None = None,
) -> Iterator[None]:
    """Within the block, each forward has ``corrupted`` written at the positions in ``drop``
    and, for ``clean``, every position but the last put back to the clean run's values.

    Args:
        adapter: The model.
        corrupted: Point → ``act[drop]`` of the corrupted run (:func:`reading` with ``drop``).
        drop: The patched positions of each batch row, ``[batch, pos]``.
        clean: Point → the clean run's activation ``[pos, ...]`` (:func:`reading` with
            ``drop=None``).

    Raises:
        ValueError: A point did not fire (checked when the block ends without error).
    """
    seen: set[str] = set()

    def put(name: str, values: Tensor) -> Callable[..., Tensor]:
        def hook(act: Tensor, hook: object) -> Tensor:  # noqa: ARG001
            seen.add(name)
            out = act.clone()
            out[drop.to(act.device)] = values.to(device=act.device, dtype=act.dtype)
            return out

        return hook

    def restore(name: str, state: Tensor) -> Callable[..., Tensor]:
        def hook(act: Tensor, hook: object) -> Tensor:  # noqa: ARG001
            seen.add(name)
            out = act.clone()
            out[:, :-1] = state[None, :-1].to(device=act.device, dtype=act.dtype)
            return out

        return hook

    hooks = [(name, put(name, values)) for name, values in corrupted.items()]
    hooks += [(name, restore(name, state)) for name, state in (clean or {}).items()]
    with adapter.model.hooks(fwd_hooks=hooks):
        yield
    _fired(adapter, [name for name, _ in hooks], seen)
