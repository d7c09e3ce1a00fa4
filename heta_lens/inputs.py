"""Validation of ``(model, tokens, target)`` shared by every public function."""

from dataclasses import dataclass

import torch
from jaxtyping import Int
from torch import Tensor

from heta_lens.hooks import ModelAdapter
from heta_lens.objective import Objective, TokenObjective


@dataclass(frozen=True, kw_only=True)
class Prepared:
    """A validated attribution request.

    Attributes:
        tokens: All token ids, ``[pos]`` (the target and anything after it included).
        target: Number of attributed context tokens ``ctx``. For a token target, the index of
            the token being explained (``1 <= target < len(tokens)``); for a contrast or a
            metric at position p, ``p + 1`` (may equal ``len(tokens)``); for a span, the
            index of its first token.
        prefix: ``tokens[:target]`` — the context tokens that are attributed (``ctx``).
        target_id: ``tokens[target]`` (−1 when ``target == len(tokens)``); for a token target,
            the token whose log-probability at position ``target - 1`` is explained.
        objective: What is explained (:mod:`heta_lens.objective`); ``None`` means the token
            target: log P(target_id | prefix).
    """

    tokens: Int[Tensor, " pos"]
    target: int
    prefix: Int[Tensor, " ctx"]
    target_id: int
    objective: Objective | None = None

    @property
    def goal(self) -> Objective:
        """The objective (a :class:`~heta_lens.objective.TokenObjective` by default)."""
        return self.objective or TokenObjective(target_id=self.target_id)

    @property
    def run_ids(self) -> Int[Tensor, " run"]:
        """The ids every forward of this request runs: ``prefix``, then the objective's tail."""
        tail = self.goal.tail
        if tail.numel() == 0:
            return self.prefix
        return torch.cat([self.prefix, tail.to(self.prefix.device)])


def as_token_tensor(adapter: ModelAdapter, tokens: object) -> Int[Tensor, " pos"]:
    """Turn a string, a list of ids or a ``[pos]``/``[1, pos]`` tensor into ``[pos]`` ids.

    Raises:
        TypeError: Non-integer tokens or an unsupported type.
        ValueError: Empty input, or a batch of more than one sequence.
    """
    if isinstance(tokens, str):
        if not tokens:
            raise ValueError("empty prompt: nothing to attribute")
        tokens = adapter.to_tokens(tokens)
    elif isinstance(tokens, list | tuple):
        if not all(isinstance(t, int) for t in tokens):
            raise TypeError("tokens given as a list must contain Python ints (token ids)")
        tokens = torch.tensor(tokens, dtype=torch.long)
    if not isinstance(tokens, Tensor):
        raise TypeError(
            "tokens must be a string, a list of ids or an integer tensor; "
            f"got {type(tokens).__name__}"
        )
    if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
        raise TypeError(f"tokens must be integer token ids; got a tensor of dtype {tokens.dtype}")
    if tokens.ndim == 2:
        if tokens.shape[0] != 1:
            raise ValueError(
                f"tokens has batch size {tokens.shape[0]}; attribute one sequence at a time "
                "(shape [pos] or [1, pos])"
            )
        tokens = tokens[0]
    if tokens.ndim != 1:
        raise ValueError(f"tokens must have shape [pos] or [1, pos]; got {tuple(tokens.shape)}")
    if tokens.numel() == 0:
        raise ValueError("empty tokens: nothing to attribute")
    if int(tokens.min()) < 0 or int(tokens.max()) >= adapter.d_vocab:
        raise ValueError(f"token ids must lie in [0, d_vocab={adapter.d_vocab})")
    return tokens.to(device=adapter.device, dtype=torch.long)


def prepare(adapter: ModelAdapter, tokens: object, target: int | None) -> Prepared:
    """Validate ``tokens`` and ``target`` (default: the last token; negative counts from the end).

    Raises:
        TypeError: Bad token type/dtype, or a non-integer target.
        ValueError: Empty tokens, target 0 (no context), target out of range, or a sequence
            longer than the model's context ``n_ctx``.
    """
    ids = as_token_tensor(adapter, tokens)
    n = int(ids.numel())
    if n > adapter.n_ctx:
        raise ValueError(
            f"sequence of {n} tokens exceeds the model context n_ctx={adapter.n_ctx}; "
            "shorten it or use windowed attribution"
        )
    if target is None:
        target = n - 1
    if isinstance(target, bool) or not isinstance(target, int):
        raise TypeError(f"target must be an int token index; got {type(target).__name__}")
    index = target + n if target < 0 else target
    if not 0 <= index < n:
        raise ValueError(f"target {target} is out of range for {n} tokens")
    if index == 0:
        raise ValueError(
            "target 0 has no context: the first token is not predicted from anything "
            "(choose a target >= 1)"
        )
    return Prepared(tokens=ids, target=index, prefix=ids[:index], target_id=int(ids[index]))
