"""Information contribution I_i (HETA §3): KL(P_orig ‖ P_masked_i) at the target position.

Two ways to run the masked copies, giving the same numbers up to round-off (float64
HookedTransformer: ≤ 1e-10 relative, tested; float32 SmolLM2-135M: both strategies sit in the
same ~3e-3 relative band around a float64 reference):

- ``"batched"``: each masked copy is a full forward of the ``ctx``-token prefix, ``chunk_size``
  copies per batched forward — ctx² token-positions in all.
- ``"prefix"``: masking token i changes nothing before i, so the copies of a chunk of
  consecutive masked positions i_0 < i_1 < … run only positions i_0..ctx-1, on top of the
  cached keys/values of the unmasked positions 0..i_0-1 (:class:`heta_lens.hooks.prefix.
  PrefixCache`); rows masked later than i_0 recompute i_0..i-1 unmasked, which is still exact.
  Σ_i (ctx − i) ≈ ctx²/2 token-positions plus the per-chunk slack. The cache mechanics belong
  to transformers / transformer-lens and have changed between their releases, so the first
  ``"prefix"`` run on a model compares one masked row with a plain forward
  (:func:`heta_lens.hooks.fastpath.prefix_path_agrees`); on a mismatch that model uses
  ``"batched"`` from then on and one :class:`~heta_lens.hooks.fastpath.FastPathWarning` names
  the installed versions.

``"prefix"`` is the default because it is the faster of the two on our models (timings in
``benchmarks/RESULTS.md``, produced by ``heta-lens bench``).

Other targets (:mod:`heta_lens.targets`) replace the KL by their own functional of the
original and masked readouts (:meth:`heta_lens.objective.Objective.divergence`): a contrast,
the KL of the two-way distribution softmax([logit_answer, logit_foil]) (or the full KL); a
span, Σ_j KL at each position predicting a continuation token (the masked copy is the whole
prompt + continuation run); a metric, |f − f_masked| (it has no distribution). Contrasts read
the last position's log-probabilities, so both strategies apply; spans and metrics read more
than that, so they always use ``"batched"`` reruns.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn
from tqdm.auto import tqdm

from heta_lens._typing import TokensLike, typechecked
from heta_lens.config import KlStrategy
from heta_lens.hooks import ModelAdapter
from heta_lens.hooks.fastpath import prefix_path_agrees
from heta_lens.hooks.prefix import PrefixCache
from heta_lens.inputs import Prepared
from heta_lens.masking import MaskFn, mask_rows, masked_copies
from heta_lens.objective import Objective, reaching
from heta_lens.targets import TargetLike, on_request


@typechecked
def information_gain(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: TargetLike = None,
    mask: str | MaskFn = "zero",
    chunk_size: int = 16,
    strategy: KlStrategy = "prefix",
    memory_gb: float | None = 2.0,
) -> Float[Tensor, " ctx"]:
    """I_i = KL(P_orig(·|x_<target) ‖ P_masked_i(·|x_<target)) for every context token i
    (another target's functional for a contrast, span or metric: see the module docstring).

    One masked copy of the prefix per context token (token i's input embedding replaced),
    ``chunk_size`` copies per batched forward that unembeds only the last position. The
    unmasked distribution goes through the same embedding-replacement path; a masked copy equal
    to the input (a mask that changes nothing there), or of a position with no causal path to
    the readout (:func:`heta_lens.objective.reaching`), is not rerun and gets exactly 0.

    Args:
        model: A ``HookedTransformer`` or ``TransformerBridge``.
        tokens: Token ids containing the target, or a string.
        target: Index of the explained token (default: last), or a target
            (:mod:`heta_lens.targets`).
        mask: ``"zero"`` (default: embedding set to 0), ``"mean"`` (mean input embedding over
            the vocabulary), ``"token:<id>"`` (embedding of that token) or a :data:`MaskFn`.
        chunk_size: Masked copies per forward (at most).
        memory_gb: Activation-memory budget of one forward of masked copies: fewer than
            ``chunk_size`` copies run at a time where ``chunk_size`` would exceed it
            (:func:`rerun_chunk`); ``None``: always ``chunk_size``.
        strategy: ``"prefix"`` (default: reruns start at the masked position, reusing the
            unmasked prefix's key/value cache; checked against a plain forward once per model,
            falling back to ``"batched"`` with a warning on a mismatch) or ``"batched"``
            (full-length reruns); see the module docstring. Same numbers either way.

    Returns:
        I, shape ``[ctx]``, non-negative (nats).

    Raises:
        ValueError: Bad tokens/target, unknown mask scheme or strategy.

    Examples:
        >>> from heta_lens.testing import tiny_bridge
        >>> info = information_gain(tiny_bridge(), torch.tensor([1, 5, 7, 3]))
        >>> info.shape, bool((info >= 0).all())
        (torch.Size([3]), True)
    """
    if not callable(mask) and not isinstance(mask, str):
        raise TypeError(f"mask must be a scheme name or a callable; got {type(mask).__name__}")
    compute = partial(
        compute_information,
        mask=mask,
        chunk_size=chunk_size,
        strategy=strategy,
        memory_gb=memory_gb,
    )
    return on_request(model, tokens, target, compute)


def compute_information(
    adapter: ModelAdapter,
    req: Prepared,
    *,
    mask: str | MaskFn,
    chunk_size: int = 16,
    strategy: KlStrategy = "prefix",
    memory_gb: float | None = None,
    progress: bool = False,
) -> Float[Tensor, " ctx"]:
    """:func:`information_gain` on an already validated request (inside the state guard):
    :func:`compute_masked_effects`'s ``information``.

    Raises:
        ValueError: Unknown mask scheme or strategy, ``chunk_size < 1`` or ``memory_gb <= 0``.
    """
    return compute_masked_effects(
        adapter,
        req,
        mask=mask,
        chunk_size=chunk_size,
        strategy=strategy,
        memory_gb=memory_gb,
        progress=progress,
    ).information


@dataclass(frozen=True, kw_only=True)
class MaskedEffects:
    """What the masked reruns of one request measured, one value per context token i.

    Attributes:
        information: I_i, the objective's divergence between the original readout and the
            token-i-masked one (the KL of the next-token distributions for a token target).
        drop: ``f − f_masked_i``, the explained scalar's drop (for a token target
            ``log P(x_T|x_<T) − log P(x_T|x_<T, token i masked)``: leave-one-out occlusion's
            score, :func:`heta_lens.methods.occlusion.occlusion`, read off the same forwards).
    """

    information: Float[Tensor, " ctx"]
    drop: Float[Tensor, " ctx"]


def compute_masked_effects(
    adapter: ModelAdapter,
    req: Prepared,
    *,
    mask: str | MaskFn,
    chunk_size: int = 16,
    strategy: KlStrategy = "prefix",
    memory_gb: float | None = None,
    progress: bool = False,
) -> MaskedEffects:
    """I and the scalar's drop for every context token, from one masked rerun per token.

    A position whose masked copy equals the input, or with no causal path to the readout
    (:func:`heta_lens.objective.reaching`), is not rerun: both values are exactly 0 there.

    Raises:
        ValueError: Unknown mask scheme or strategy, ``chunk_size < 1`` or ``memory_gb <= 0``.
    """
    if strategy not in ("batched", "prefix"):
        raise ValueError(f"unknown KL strategy {strategy!r}; valid: batched, prefix")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1; got {chunk_size}")
    ctx = int(req.prefix.numel())
    goal, ids = req.goal, req.run_ids
    if memory_gb is not None:
        chunk_size = rerun_chunk(adapter, n=int(ids.numel()), chunk=chunk_size, memory_gb=memory_gb)
    with torch.no_grad():
        full = adapter.embed(ids[None])[0]
        x = full[:ctx]
        replacements = mask_rows(adapter, x, mask)
        orig = goal.readout(adapter, ids[None], full[None])[0]
        value = goal.scalar(orig[None])[0]
        # A "masked" copy identical to the input is the input, and a position with no causal
        # path to the readout (objective.reaching) cannot change it: either way the value is
        # exactly 0 and needs no forward (batch composition alone would leave ~1e-16 round-off).
        differs = (replacements != x).any(-1) & reaching(goal, ctx).to(x.device)
        changed = differs.nonzero().flatten()
        info = torch.zeros(ctx, dtype=x.dtype, device=x.device)
        drop = torch.zeros(ctx, dtype=x.dtype, device=x.device)
        chunks = changed.split(chunk_size) if changed.numel() else ()
        use_prefix = (
            strategy == "prefix"
            and goal.last_position_log_probs
            and bool(chunks)
            and prefix_path_agrees(adapter, req.prefix, x, replacements)
        )
        reruns = _prefix_reruns if use_prefix else _batched_reruns
        bar = tqdm(total=len(chunks), desc="masked reruns", unit="chunk", disable=not progress)
        with bar:
            for idx, masked in reruns(adapter, goal, ids, full, replacements, chunks):
                info[idx] = goal.divergence(orig, masked)
                drop[idx] = (value - goal.scalar(masked)).to(drop.dtype)
                bar.update()
    return MaskedEffects(information=info, drop=drop)


def rerun_chunk(adapter: ModelAdapter, *, n: int, chunk: int, memory_gb: float) -> int:
    """Masked copies per forward: ``chunk``, or fewer where a forward of ``chunk`` copies of
    an ``n``-token run would need more than ``memory_gb`` (never fewer than 1).

    Estimate per copy, in elements of the compute dtype: the attention scores and
    probabilities of one layer at a time, ``4·n_heads·n²`` (a no-grad forward frees each
    layer's before the next), about eight activation-sized buffers ``8·n·(d_model + d_mlp)``,
    and the copy's key/value cache over every layer, ``2·n_layers·n_kv_heads·d_head·n`` (the
    prefix path repeats the prefix's cache once per copy). On SmolLM2-135M in float32 this
    is ≈ 0.78 GB per copy at 2,048 tokens (2 copies in the default 2 GB), 0.25 GB at 1,024
    (8 copies) and 0.09 GB at 512, where the default 16 copies still fit: only long inputs
    change their chunking, which changes the result by round-off only.

    Raises:
        ValueError: ``memory_gb <= 0``.
    """
    if memory_gb <= 0:
        raise ValueError(f"memory_gb must be > 0; got {memory_gb}")
    d_head = adapter.d_model // adapter.n_heads
    elements = (
        4 * adapter.n_heads * n * n
        + 8 * n * (adapter.d_model + adapter.d_mlp)
        + 2 * adapter.n_layers * adapter.n_kv_heads * d_head * n
    )
    per_copy = elements * (torch.finfo(adapter.dtype).bits // 8)
    return max(1, min(chunk, int(memory_gb * 2**30 // per_copy)))


Reruns = Iterator[tuple[Int[Tensor, " batch"], Tensor]]
"""(masked positions, the objective's readout of their masked copies), chunk by chunk."""


def _batched_reruns(
    adapter: ModelAdapter,
    goal: Objective,
    ids: Int[Tensor, " run"],
    x: Float[Tensor, "run d_model"],
    replacements: Float[Tensor, "ctx d_model"],
    chunks: tuple[Tensor, ...],
) -> Reruns:
    """Every masked copy as a full-length forward of the run sequence."""
    for idx in chunks:
        batch = ids[None].expand(idx.numel(), -1)
        yield idx, goal.readout(adapter, batch, masked_copies(x, replacements, idx))


def _prefix_reruns(
    adapter: ModelAdapter,
    goal: Objective,  # noqa: ARG001 - its readout is the last position's log-probabilities
    prefix: Int[Tensor, " ctx"],
    x: Float[Tensor, "ctx d_model"],
    replacements: Float[Tensor, "ctx d_model"],
    chunks: tuple[Tensor, ...],
) -> Reruns:
    """Each chunk (ascending positions) runs from its first masked position on, after the
    cached unmasked prefix; the cache grows monotonically, one unmasked pass in all."""
    cache = PrefixCache(adapter, prefix)
    starts = torch.stack([idx[0] for idx in chunks]).tolist()  # one transfer, not one per chunk
    for idx, start in zip(chunks, starts, strict=True):
        cache.extend(start)
        copies = masked_copies(x[start:], replacements, idx, start=start)
        yield idx, cache.suffix_log_probs(copies)
