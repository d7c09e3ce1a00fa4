"""HETA's three components of one request, each computed once per setting that changes it.

:class:`ComponentCache` is the one place that runs the gate (attention, read layer by layer), the
curvature estimator and the masked reruns. :func:`heta_lens.attribute` asks it for one config's
components; :func:`heta_lens.family.heta_family` asks it for many configs' (HETA, its
ablations, ``@beta=`` variants) and so computes each distinct component once.
"""

from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from heta_lens.config import HetaConfig
from heta_lens.curvature.base import estimate_curvature, estimate_curvature_interactions
from heta_lens.gate_layers import LayerwiseAttention, layerwise_gate, layerwise_gate_by_head
from heta_lens.hooks import ModelAdapter
from heta_lens.information import MaskedEffects, compute_masked_effects
from heta_lens.inputs import Prepared


@dataclass(frozen=True, kw_only=True)
class Components:
    """Raw gate M, curvature S and information I of one request (``None``: switched off),
    and the extra outputs a config asks to keep: the gate split by head and the curvature's
    pairwise interaction map (``None``: not asked for)."""

    gate: Float[Tensor, " ctx"]
    curvature: Float[Tensor, " ctx"] | None
    information: Float[Tensor, " ctx"] | None
    gate_by_head: Float[Tensor, "layer head_index ctx"] | None = None
    interactions: Float[Tensor, "ctx ctx"] | None = None


def curvature_key(config: HetaConfig) -> tuple[object, ...]:
    """What two configs must share to have the same curvature S: the estimator (with its own
    options and probe count) and the seed (HVP batching and chunking do not change S). An
    estimator that keeps the interaction map takes S from its diagonal, so it has its own key
    (same numbers up to round-off)."""
    return (config.curvature, config.seed)


class ComponentCache:
    """Gate, curvature and information of one validated request, computed lazily and kept.

    The attention is read layer by layer (:mod:`heta_lens.gate_layers`: the head-mean mixings
    once, then one streamed forward per gate); the gate (and, when asked for, its split by
    head) once per ``gate_mode``; S (with its interaction map, when the estimator keeps it) once per
    :func:`curvature_key`; I once per mask scheme (the KL strategy and chunking change only
    round-off). Use inside the model-state guard.

    Args:
        adapter: The model surface.
        req: The validated request.
        progress: Show tqdm bars for the HVP and masked-rerun loops.
    """

    def __init__(self, adapter: ModelAdapter, req: Prepared, *, progress: bool = False) -> None:
        self.adapter = adapter
        self.req = req
        self.progress = progress
        self._attention = LayerwiseAttention(adapter, req.run_ids)
        self._gates: dict[str, Tensor] = {}
        self._gates_by_head: dict[str, Tensor] = {}
        self._curvatures: dict[tuple[object, ...], Tensor] = {}
        self._interactions: dict[tuple[object, ...], Tensor] = {}
        self._effects: dict[str, MaskedEffects] = {}

    def _gate_options(self, config: HetaConfig) -> dict[str, Any]:
        ctx, goal = self.req.target, self.req.goal
        return {
            "ctx": ctx,
            "queries": goal.gate_queries(ctx),
            "layers": goal.gate_layers,
            "mode": config.gate_mode,
        }

    def gate(self, config: HetaConfig) -> Float[Tensor, " ctx"]:
        """The raw gate M for ``config.gate_mode``."""
        if config.gate_mode not in self._gates:
            self._gates[config.gate_mode] = layerwise_gate(
                self._attention, **self._gate_options(config)
            )
        return self._gates[config.gate_mode]

    def gate_by_head(self, config: HetaConfig) -> Float[Tensor, "layer head_index ctx"]:
        """The raw gate M for ``config.gate_mode`` split by head (sums to :meth:`gate`).

        Raises:
            ValueError: The target's gate has no head (a metric before the first attention
                layer: :func:`heta_lens.gate.objective_gate_by_head`).
        """
        if config.gate_mode not in self._gates_by_head:
            self._gates_by_head[config.gate_mode] = layerwise_gate_by_head(
                self._attention, **self._gate_options(config)
            )
        return self._gates_by_head[config.gate_mode]

    def curvature(self, config: HetaConfig) -> Float[Tensor, " ctx"]:
        """The raw curvature S of ``config``'s estimator settings (the diagonal of the
        interaction map when the estimator keeps it)."""
        key = curvature_key(config)
        if key not in self._curvatures:
            if config.interactions:
                pairwise = estimate_curvature_interactions(
                    self.adapter, self.req, config=config, progress=self.progress
                )
                self._interactions[key] = pairwise
                self._curvatures[key] = pairwise.diagonal().clone()
            else:
                self._curvatures[key] = estimate_curvature(
                    self.adapter, self.req, config=config, progress=self.progress
                )
        return self._curvatures[key]

    def interactions(self, config: HetaConfig) -> Float[Tensor, "ctx ctx"]:
        """The curvature's pairwise interaction map (``config.curvature.interactions``).

        Raises:
            ValueError: ``config``'s estimator does not keep it.
        """
        if not config.interactions:
            raise ValueError("the config's curvature estimator does not keep interactions")
        self.curvature(config)
        return self._interactions[curvature_key(config)]

    def masked_effects(self, config: HetaConfig) -> MaskedEffects:
        """I and the target scalar's drop under ``config.information.mask`` (one set of
        masked reruns per mask scheme)."""
        options = config.information
        if options.mask not in self._effects:
            self._effects[options.mask] = compute_masked_effects(
                self.adapter,
                self.req,
                mask=options.mask,
                chunk_size=options.chunk,
                strategy=options.strategy,
                memory_gb=options.memory_gb,
                progress=self.progress,
            )
        return self._effects[options.mask]

    def information(self, config: HetaConfig) -> Float[Tensor, " ctx"]:
        """The raw information I under ``config.information.mask``."""
        return self.masked_effects(config).information

    def computed_effects(self) -> dict[str, MaskedEffects]:
        """Mask scheme → the masked reruns' effects computed so far (nothing is computed)."""
        return dict(self._effects)

    def components(self, config: HetaConfig) -> Components:
        """M, S, I as ``config`` asks for them (components it switches off are not computed)."""
        return Components(
            gate=self.gate(config),
            curvature=self.curvature(config) if config.use_curvature else None,
            information=self.information(config) if config.use_information else None,
            gate_by_head=self.gate_by_head(config) if config.gate_by_head else None,
            interactions=self.interactions(config) if config.interactions else None,
        )


def target_log_prob(adapter: ModelAdapter, req: Prepared) -> float:
    """log P(tokens[target] | tokens[:target]) from one plain forward (a token target), else
    NaN: the other kinds' f is :func:`target_value`."""
    if req.objective is not None and req.goal.kind != "token":
        return float("nan")
    with torch.no_grad():
        return float(adapter.last_log_probs(req.prefix[None])[0, req.target_id])


def target_scalars(adapter: ModelAdapter, req: Prepared) -> tuple[float, float]:
    """``(target_log_prob, target_value)`` of a request: one plain forward for a token target
    (both are log P), two otherwise (NaN and f)."""
    log_prob = target_log_prob(adapter, req)
    return log_prob, log_prob if req.objective is None else target_value(adapter, req)


def target_value(adapter: ModelAdapter, req: Prepared) -> float:
    """f, the explained scalar, at the input (one plain forward; the log-probability for a
    token target).

    Raises:
        TypeError: A metric's ``fn`` does not return a scalar tensor.
    """
    if req.objective is None:
        return target_log_prob(adapter, req)
    goal = req.goal
    with torch.no_grad():
        return float(goal.scalar(goal.readout(adapter, req.run_ids[None], None))[0])
