"""Choosing tokens to explain: greedy continuations and target text, as token positions."""

import torch
from jaxtyping import Int
from torch import Tensor, nn

from heta_lens.hooks import ModelAdapter, preserved_model_state
from heta_lens.inputs import as_token_tensor


def greedy_generate(
    model: nn.Module, tokens: Tensor | str, *, max_new_tokens: int
) -> tuple[Int[Tensor, " pos"], list[int]]:
    """Greedily extend ``tokens`` by ``max_new_tokens`` tokens (no sampling, no cache).

    Returns:
        The extended ids and the positions of the generated tokens (the targets to explain:
        the "why did it say that" workflow).

    Raises:
        ValueError: ``max_new_tokens < 1`` or the result would exceed the model's ``n_ctx``.
    """
    if max_new_tokens < 1:
        raise ValueError(f"--generate needs at least 1 token; got {max_new_tokens}")
    adapter = ModelAdapter(model)
    ids = as_token_tensor(adapter, tokens)
    if ids.numel() + max_new_tokens > adapter.n_ctx:
        raise ValueError(
            f"prompt ({ids.numel()} tokens) + {max_new_tokens} generated tokens exceeds the "
            f"model context n_ctx={adapter.n_ctx}; shorten the prompt or use windowed attribution"
        )
    start = int(ids.numel())
    with preserved_model_state(model), torch.no_grad():
        for _ in range(max_new_tokens):
            next_id = adapter.last_log_probs(ids[None])[0].argmax()
            ids = torch.cat([ids, next_id[None]])
    return ids, list(range(start, start + max_new_tokens))


def append_target_text(
    model: nn.Module, prompt: str, target_text: str
) -> tuple[Int[Tensor, " pos"], list[int]]:
    """Tokenise ``prompt + target_text`` and locate the target text's tokens after the prompt.

    Raises:
        ValueError: Empty target text, or the combined text does not tokenise to the prompt's
            tokens followed by new ones (a token merges across the boundary): put the boundary
            where a token starts, e.g. ``" Paris"`` with its leading space.
    """
    if not target_text:
        raise ValueError("--target-text is empty")
    adapter = ModelAdapter(model)
    prompt_ids = adapter.to_tokens(prompt)
    full = adapter.to_tokens(prompt + target_text)
    n = int(prompt_ids.numel())
    if full.numel() <= n or not torch.equal(full[:n], prompt_ids):
        raise ValueError(
            f"target text {target_text!r} does not tokenize to tokens present after the prompt "
            "(a token merges across the boundary); start it where a token starts, e.g. with "
            "its leading space"
        )
    return full, list(range(n, int(full.numel())))
