"""What the engine differentiates, reruns and rolls out for one target: its resolved form.

A user names a target with :mod:`heta_lens.targets` (``Token``, ``Contrast``, ``Span``,
``Metric``); :func:`heta_lens.targets.prepare_target` resolves it, against the model and the
validated tokens, into an :class:`Objective` carried by the request
(:attr:`heta_lens.inputs.Prepared.goal`). Every component reads the target only through it:

- the scalar f: :meth:`Objective.readout` of a forward whose activation at ``hook_embed`` (or
  ``blocks.{l}.hook_resid_pre``) is replaced, then :meth:`Objective.scalar`. The curvature
  estimators take the Hessian of f w.r.t. the context rows of that activation
  (:func:`scalar_fn`); the gradient baselines and occlusion explain the same f;
- the information term: :meth:`Objective.divergence` between the readout of the original and
  of each masked rerun;
- the gate: the rows :meth:`Objective.gate_queries` of the rollout over the first
  :attr:`Objective.gate_layers` attention layers (:func:`heta_lens.gate.objective_gate`).

The forward of a request runs ``prefix`` (the ``ctx`` attributed tokens) followed by
:attr:`Objective.tail` (a teacher-forced continuation's tokens; empty for the other kinds).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from heta_lens.hooks import ModelAdapter
from heta_lens.hooks.readouts import activation, tail_log_probs
from heta_lens.masking import kl_divergence

TargetKind = Literal["token", "contrast", "span", "metric"]
ContrastKl = Literal["pair", "vocab"]
BatchedScalarFn = Callable[[Float[Tensor, "batch pos d_model"]], Float[Tensor, " batch"]]
"""f applied row-wise: maps a batch of (context) activation matrices to one scalar per row."""


class Objective(Protocol):
    """The engine's view of a target (one implementation per target kind).

    Attributes:
        kind: ``"token"``, ``"contrast"``, ``"span"`` or ``"metric"``.
        description: What f is, in words (shown by the table and the HTML page).
        tail: Token ids run after the context (``[tail]``, usually empty).
        gate_layers: Attention layers the gate rolls through (``None``: all of them).
        last_position_log_probs: The readout is the last position's log-probabilities, so
            the prefix-KV masked reruns of :mod:`heta_lens.information` apply.
    """

    @property
    def kind(self) -> TargetKind: ...

    @property
    def description(self) -> str: ...

    @property
    def tail(self) -> Int[Tensor, " tail"]: ...

    @property
    def gate_layers(self) -> int | None: ...

    @property
    def last_position_log_probs(self) -> bool: ...

    def readout(
        self,
        adapter: ModelAdapter,
        ids: Int[Tensor, "batch pos"],
        acts: Float[Tensor, "batch pos d_model"] | None,
        *,
        at_layer: int | None = None,
    ) -> Tensor:
        """What one forward yields per row (log-probabilities, or f itself)."""
        ...

    def scalar(self, readout: Tensor) -> Float[Tensor, " batch"]:
        """f of each row of a readout."""
        ...

    def divergence(self, orig: Tensor, masked: Tensor) -> Float[Tensor, " batch"]:
        """The information functional: original readout (no batch axis) vs masked rows."""
        ...

    def gate_queries(self, ctx: int) -> tuple[int, ...]:
        """Query positions whose gate rows are combined (in the run sequence)."""
        ...


def _empty() -> Tensor:
    return torch.zeros(0, dtype=torch.long)


@dataclass(frozen=True, kw_only=True)
class TokenObjective:
    """f = log P(target_id | prefix); information = KL over the vocabulary (the paper's HETA)."""

    target_id: int
    description: str = ""
    kind: TargetKind = "token"
    tail: Tensor = field(default_factory=_empty)
    gate_layers: int | None = None
    last_position_log_probs: bool = True

    def readout(
        self,
        adapter: ModelAdapter,
        ids: Tensor,
        acts: Tensor | None,
        *,
        at_layer: int | None = None,
    ) -> Tensor:
        if at_layer is None:
            return adapter.last_log_probs(ids, acts)
        return adapter.last_log_probs(ids, acts, at_layer=at_layer)

    def scalar(self, readout: Tensor) -> Tensor:
        return readout[:, self.target_id]

    def divergence(self, orig: Tensor, masked: Tensor) -> Tensor:
        return kl_divergence(orig, masked)

    def gate_queries(self, ctx: int) -> tuple[int, ...]:
        return (ctx - 1,)


def pair_log_probs(log_probs: Tensor, answer: int, foil: int) -> Tensor:
    """log softmax([logit_answer, logit_foil]) from (full or partial) log-probabilities (the
    log-normaliser cancels), ``[..., 2]``."""
    return torch.stack([log_probs[..., answer], log_probs[..., foil]], dim=-1).log_softmax(-1)


@dataclass(frozen=True, kw_only=True)
class ContrastObjective(TokenObjective):
    """f = logit(answer) − logit(foil) = log P(answer) − log P(foil) at the last position.

    Information (``kl="pair"``): KL between the original and masked two-way distributions
    softmax([logit_answer, logit_foil]); ``kl="vocab"``: the full next-token KL (which does
    not depend on answer or foil).
    """

    foil_id: int
    kl: ContrastKl = "pair"
    kind: TargetKind = "contrast"

    def scalar(self, readout: Tensor) -> Tensor:
        return readout[:, self.target_id] - readout[:, self.foil_id]

    def divergence(self, orig: Tensor, masked: Tensor) -> Tensor:
        if self.kl == "vocab":
            return kl_divergence(orig, masked)
        pair = pair_log_probs(masked, self.target_id, self.foil_id)
        return kl_divergence(pair_log_probs(orig, self.target_id, self.foil_id), pair)


@dataclass(frozen=True, kw_only=True)
class SpanObjective:
    """f = Σ_j log P(y_j | prompt, y_<j), teacher forced; information = Σ_j KL at each
    position that predicts a y_j; gate rows: those k positions."""

    continuation: tuple[int, ...]
    description: str = ""
    kind: TargetKind = "span"
    gate_layers: int | None = None
    last_position_log_probs: bool = False

    @property
    def tail(self) -> Tensor:
        return torch.tensor(self.continuation[:-1], dtype=torch.long)

    def readout(
        self,
        adapter: ModelAdapter,
        ids: Tensor,
        acts: Tensor | None,
        *,
        at_layer: int | None = None,
    ) -> Tensor:
        return tail_log_probs(adapter, ids, acts, keep=len(self.continuation), at_layer=at_layer)

    def scalar(self, readout: Tensor) -> Tensor:
        ys = torch.tensor(self.continuation, device=readout.device)
        steps = torch.arange(len(self.continuation), device=readout.device)
        return readout[:, steps, ys].sum(-1)

    def divergence(self, orig: Tensor, masked: Tensor) -> Tensor:
        return kl_divergence(orig[None], masked).sum(-1)

    def gate_queries(self, ctx: int) -> tuple[int, ...]:
        return tuple(range(ctx - 1, ctx - 1 + len(self.continuation)))


@dataclass(frozen=True, kw_only=True)
class MetricObjective:
    """f = fn(activation of ``hook_name`` at the last position); information = |Δf|."""

    hook_name: str
    fn: Callable[[Tensor], Tensor]
    position_axis: int
    gate_layers: int | None
    description: str = ""
    kind: TargetKind = "metric"
    tail: Tensor = field(default_factory=_empty)
    last_position_log_probs: bool = False

    def readout(
        self,
        adapter: ModelAdapter,
        ids: Tensor,
        acts: Tensor | None,
        *,
        at_layer: int | None = None,
    ) -> Tensor:
        act = activation(adapter, ids, self.hook_name, acts, at_layer=at_layer)
        rows = act.select(self.position_axis, -1)
        return torch.stack([self._checked(self.fn(row)) for row in rows])

    def _checked(self, value: object) -> Tensor:
        if not isinstance(value, Tensor) or value.ndim != 0 or not value.is_floating_point():
            got = (
                f"a tensor of shape {tuple(value.shape)}"
                if isinstance(value, Tensor)
                else type(value).__name__
            )
            raise TypeError(
                f"Metric fn must return a 0-d floating tensor (a scalar of the activation); "
                f"got {got}"
            )
        return value

    def scalar(self, readout: Tensor) -> Tensor:
        return readout

    def divergence(self, orig: Tensor, masked: Tensor) -> Tensor:
        return (masked - orig).abs()

    def gate_queries(self, ctx: int) -> tuple[int, ...]:
        return (ctx - 1,)


def reaching(goal: Objective, ctx: int) -> Bool[Tensor, " ctx"]:
    """Which context positions have a causal path to the readout, structurally.

    With no attention layer before the readout (``gate_layers == 0``: a metric on the
    embeddings, on ``blocks.0.hook_resid_pre`` or on layer 0's q/k/v) nothing mixes positions,
    so only the readout's own query positions (:meth:`Objective.gate_queries`) reach it; with
    one or more causal attention layers every context position does. Masking a position that
    cannot reach the readout cannot change it: :mod:`heta_lens.information` gives it exactly 0
    without a rerun (a rerun would give 0 up to batch-composition round-off), as the gate does.
    Sliding-window layers are treated as full causal layers (a superset of the true reach).
    """
    if goal.gate_layers != 0:
        return torch.ones(ctx, dtype=torch.bool)
    mask = torch.zeros(ctx, dtype=torch.bool)
    own = [q for q in goal.gate_queries(ctx) if 0 <= q < ctx]
    mask[own] = True
    return mask


def scalar_fn(
    goal: Objective,
    adapter: ModelAdapter,
    ids: Int[Tensor, " pos"],
    tail_acts: Float[Tensor, "tail d_model"] | None = None,
    *,
    at_layer: int | None = None,
) -> BatchedScalarFn:
    """f(Z) row-wise: Z replaces the context rows of the activation at ``hook_embed``
    (``at_layer=None``) or ``blocks.{at_layer}.hook_resid_pre``; the tail rows are held at
    ``tail_acts`` (their clean values)."""

    def fn(z: Tensor) -> Tensor:
        batch = ids[None].expand(z.shape[0], -1)
        acts = z if tail_acts is None else torch.cat([z, tail_acts.expand(z.shape[0], -1, -1)], 1)
        return goal.scalar(goal.readout(adapter, batch, acts, at_layer=at_layer))

    return fn
