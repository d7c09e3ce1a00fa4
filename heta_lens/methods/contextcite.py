"""ContextCite-style attribution (Cohen-Wang et al. 2024): a sparse linear surrogate of ablations.

Sources are the context tokens (``sources="token"``, default; BOS included) or sentences
(``sources="sentence"``: a sentence ends at a token whose string, trailing spaces stripped, ends
with ``.``, ``!``, ``?`` or a newline; the tokens after the last such token form a final
sentence). Recipe:

1. Draw ``n_ablations`` keep-masks ``z ∈ {0,1}^S``, each source kept independently with
   probability ``keep_prob`` (private generator seeded with ``seed``).
2. For each mask, replace the input embedding of every token of a dropped source by its
   ``mask_rows`` row (``mask``: ``"zero"`` default, ``"mean"``, ``"token:<id>"``) and compute the
   target's logit-probability ``y = log(p / (1 − p))``, ``p = P(x_T | ablated x_<T)``.
3. Fit ``y ≈ w·z + b`` by LASSO as ContextCite's ``LassoRegression`` does with scikit-learn:
   columns standardised (``z'_j = (z_j − mean_j) / std_j``, population std, 1 where it is 0),
   objective ``1/(2n) ‖y − Z'c − b'‖² + alpha·‖c‖₁`` (sklearn ``Lasso``, ContextCite's default
   ``alpha = 0.01``, no cross-validation), mapped back to mask units ``w_j = c_j / std_j``. Solved
   by our own cyclic coordinate descent (:func:`lasso`; scikit-learn is not a dependency).
4. Token i's score is ``w`` of its source (every token of a sentence gets the sentence's ``w``).

Cost per call (forwards): 1 (result's log-probability) + ⌈n_ablations / batch_size⌉ batched
forwards of ``ctx``-token sequences (+ the vocabulary-mean embedding once for ``"mean"``).
"""

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from numpy.typing import NDArray
from torch import Tensor, nn

from heta_lens._typing import TokensLike, typechecked
from heta_lens.hooks import ModelAdapter
from heta_lens.inputs import Prepared
from heta_lens.masking import mask_rows
from heta_lens.methods.common import run_baseline
from heta_lens.registry import MethodSpec
from heta_lens.result import AttributionResult
from heta_lens.targets import TargetLike

Sources = Literal["token", "sentence"]
_SENTENCE_END = (".", "!", "?", "\n")


@dataclass(frozen=True, kw_only=True)
class ContextCiteConfig:
    """Options of :func:`contextcite` (ContextCite's defaults where it has one).

    Attributes:
        n_ablations: Random ablations fitted (ContextCite default 64).
        keep_prob: Probability of keeping each source (ContextCite 0.5).
        alpha: LASSO penalty on standardised columns (ContextCite 0.01).
        sources: ``"token"`` (default) or ``"sentence"``.
        seed: Seed of the private generator drawing the masks.
        batch_size: Ablated copies per batched forward.
        mask: Replacement of a dropped token's input embedding (``"zero"``, ``"mean"``,
            ``"token:<id>"``).
        max_iter: Coordinate-descent sweeps at most.
        tol: Stop when no coefficient moved more than ``tol`` in a sweep.
    """

    n_ablations: int = 64
    keep_prob: float = 0.5
    alpha: float = 0.01
    sources: Sources = "token"
    seed: int = 0
    batch_size: int = 16
    mask: str = "zero"
    max_iter: int = 10_000
    tol: float = 1e-10

    def __post_init__(self) -> None:
        if self.n_ablations < 2 or self.batch_size < 1 or self.max_iter < 1:
            raise ValueError("n_ablations must be >= 2, batch_size and max_iter >= 1")
        if not 0.0 < self.keep_prob < 1.0:
            raise ValueError(f"keep_prob must lie in (0, 1); got {self.keep_prob}")
        if self.alpha < 0.0 or self.tol <= 0.0:
            raise ValueError("alpha must be >= 0 and tol > 0")
        if self.sources not in ("token", "sentence"):
            raise ValueError(f"unknown sources {self.sources!r}; valid: token, sentence")


def lasso(
    X: NDArray[np.float64],
    y: NDArray[np.float64],
    *,
    alpha: float,
    max_iter: int = 10_000,
    tol: float = 1e-10,
) -> tuple[NDArray[np.float64], float]:
    """``argmin_{w,b} 1/(2n) ‖y − Xw − b‖² + alpha‖w‖₁`` by cyclic coordinate descent.

    The intercept is handled by centring ``X`` and ``y`` (``b = ȳ − x̄·w``). Coordinate j
    update: ``w_j = S(x_j·r_j / n, alpha) / (x_j·x_j / n)`` with ``r_j`` the residual without
    feature j and ``S`` soft-thresholding; constant columns get ``w_j = 0``. Stops when a sweep
    moves no coefficient by more than ``tol`` or after ``max_iter`` sweeps.

    Returns:
        ``(w [p], b)``.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, p = X.shape
    x_mean, y_mean = X.mean(0), float(y.mean())
    Xc = X - x_mean
    col_sq = (Xc * Xc).sum(0) / n
    w = np.zeros(p)
    resid = y - y_mean
    for _ in range(max_iter):
        largest = 0.0
        for j in range(p):
            if col_sq[j] == 0.0:
                continue
            old = w[j]
            rho = float(Xc[:, j] @ resid) / n + col_sq[j] * old
            new = np.sign(rho) * max(abs(rho) - alpha, 0.0) / col_sq[j]
            if new != old:
                resid -= Xc[:, j] * (new - old)
                w[j] = new
                largest = max(largest, abs(new - old))
        if largest <= tol:
            break
    return w, y_mean - float(x_mean @ w)


def sentence_sources(strings: list[str]) -> Int[Tensor, " ctx"]:
    """Sentence index of every token: a sentence ends after a token whose string (trailing
    spaces stripped) ends with ``.``, ``!``, ``?`` or ``\\n``."""
    ids, current = [], 0
    for s in strings:
        ids.append(current)
        if s.endswith("\n") or s.rstrip(" ").endswith(_SENTENCE_END):
            current += 1
    return torch.tensor(ids, dtype=torch.long)


def token_sources(adapter: ModelAdapter, req: Prepared, sources: Sources) -> Int[Tensor, " ctx"]:
    """Source index of every context token (``0..S-1``).

    Raises:
        ValueError: ``"sentence"`` sources on a model without a tokenizer.
    """
    ctx = int(req.prefix.numel())
    if sources == "token":
        return torch.arange(ctx)
    strings = adapter.to_str_tokens(req.prefix)
    if strings is None:
        raise ValueError("sources='sentence' needs the model's tokenizer (token strings)")
    return sentence_sources(strings)


@dataclass(frozen=True, kw_only=True)
class AblationData:
    """The surrogate's training set: keep-masks per source, the token→source map, targets."""

    keep: Bool[Tensor, "ablation source"]
    source_of: Int[Tensor, " ctx"]
    y: Float[Tensor, " ablation"]


def ablation_data(
    adapter: ModelAdapter, req: Prepared, *, config: ContextCiteConfig
) -> AblationData:
    """Steps 1–2 of the module docstring: sampled keep-masks and the target's logit-probability."""
    source_of = token_sources(adapter, req, config.sources)
    n_sources = int(source_of.max()) + 1
    gen = torch.Generator().manual_seed(config.seed)
    keep = torch.rand(config.n_ablations, n_sources, generator=gen) < config.keep_prob
    keep_tok = keep[:, source_of].to(adapter.device)
    ys = []
    with torch.no_grad():
        x = adapter.embed(req.prefix[None])[0]
        rows = mask_rows(adapter, x, config.mask)
        for chunk in keep_tok.split(config.batch_size):
            embeds = torch.where(chunk[..., None], x, rows)
            ids = req.prefix[None].expand(chunk.shape[0], -1)
            log_p = adapter.last_log_probs(ids, embeds)[:, req.target_id].double()
            ys.append(log_p - torch.log(-torch.expm1(log_p)))
    y = torch.cat(ys).cpu()
    if not bool(torch.isfinite(y).all()):
        raise ValueError("contextcite: the target's probability is 0 or 1 under some ablation")
    return AblationData(keep=keep, source_of=source_of, y=y)


def surrogate_weights(
    keep: Bool[Tensor, "ablation source"],
    y: Float[Tensor, " ablation"],
    *,
    config: ContextCiteConfig,
) -> Float[Tensor, " source"]:
    """Step 3: LASSO on standardised keep-masks, weights mapped back to mask units."""
    Z = keep.double().numpy()
    scale = Z.std(0)
    scale[scale == 0.0] = 1.0
    coef, _ = lasso(
        (Z - Z.mean(0)) / scale,
        y.double().numpy(),
        alpha=config.alpha,
        max_iter=config.max_iter,
        tol=config.tol,
    )
    return torch.from_numpy(coef / scale)


def contextcite_scores(
    adapter: ModelAdapter, req: Prepared, *, config: ContextCiteConfig
) -> Float[Tensor, " ctx"]:
    """ContextCite scores of a validated request (inside the state guard)."""
    data = ablation_data(adapter, req, config=config)
    w = surrogate_weights(data.keep, data.y, config=config)
    return w[data.source_of].to(device=adapter.device, dtype=adapter.dtype)


@typechecked
def contextcite(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: TargetLike = None,
    config: ContextCiteConfig | None = None,
) -> AttributionResult:
    """ContextCite: LASSO weights of a linear surrogate of the target's logit-probability.

    Args:
        model: A ``HookedTransformer`` or ``TransformerBridge``.
        tokens: Token ids containing the target, or a string.
        target: Index of the explained token (default: last).
        config: :class:`ContextCiteConfig` (defaults when ``None``).

    Returns:
        An :class:`AttributionResult`; ``scores[i]`` is the surrogate weight of token i's source
        (change in logit-probability when the source is kept rather than dropped).

    Raises:
        ValueError: Bad tokens/target or mask scheme, sentence sources without a tokenizer, or
            a target probability of exactly 0 or 1 under an ablation.
    """
    cfg = ContextCiteConfig() if config is None else config
    return run_baseline(
        model,
        tokens,
        target=target,
        method="contextcite",
        score_fn=lambda adapter, req: contextcite_scores(adapter, req, config=cfg),
        signed=True,
    )


METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(
        name="contextcite",
        fn=contextcite,
        default_config=ContextCiteConfig(),
        description="ContextCite: LASSO surrogate of the target's logit-probability over "
        "random token (or sentence) ablations",
    ),
)
