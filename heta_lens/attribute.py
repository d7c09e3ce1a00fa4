"""``attribute``: the full HETA attribution of one target token."""

import torch
from torch import Tensor, nn

from heta_lens._typing import TokensLike, typechecked
from heta_lens.config import HetaConfig
from heta_lens.estimators import estimate_curvature
from heta_lens.gate import gate_from_capture
from heta_lens.hooks import ModelAdapter, preserved_model_state
from heta_lens.information import compute_information
from heta_lens.inputs import prepare
from heta_lens.result import HetaResult
from heta_lens.scoring import combine, gate_term, normalize


@typechecked
def attribute(
    model: nn.Module,
    tokens: TokensLike,
    *,
    target: int | None = None,
    config: HetaConfig | None = None,
    progress: bool = False,
) -> HetaResult:
    """Hessian-Enhanced Token Attribution of ``tokens[target]`` to each earlier token.

    Attr_i = G_i · (β·S'_i + γ·I'_i): G the gate term (:func:`heta_lens.semantic_gate`, sink
    policy applied), S' and I' the normalised curvature (:func:`heta_lens.curvature_sensitivity`)
    and information (:func:`heta_lens.information_gain`). Components switched off in ``config``
    (ablations) are not computed. The curvature probes come from
    ``torch.Generator().manual_seed(config.seed)``, so results are deterministic.

    Args:
        model: A ``HookedTransformer`` or ``TransformerBridge``.
        tokens: Token ids ``[pos]``/``[1, pos]`` containing the target, or a string.
        target: Index of the explained token (default: the last; negative counts from the end).
        config: :class:`HetaConfig` (default: ``HetaConfig()``).
        progress: Show tqdm progress bars for the HVP and masked-rerun loops.

    Returns:
        A :class:`HetaResult`; ``scores`` has one entry per context token.

    Raises:
        TypeError: Unsupported model or non-integer tokens.
        ValueError: Empty tokens, target 0 or out of range, sequence longer than ``n_ctx``,
            unknown mask scheme.

    Examples:
        >>> from heta_lens.testing import tiny_bridge
        >>> result = attribute(tiny_bridge(), torch.tensor([1, 5, 7, 3, 9]))
        >>> result.scores.shape, result.target
        (torch.Size([4]), 4)
    """
    config = config or HetaConfig()
    adapter = ModelAdapter(model)
    req = prepare(adapter, tokens, target)
    with preserved_model_state(model):
        gate = gate_from_capture(adapter.capture_attention(req.prefix), mode=config.gate_mode)
        with torch.no_grad():
            log_probs = adapter.last_log_probs(req.prefix[None])[0]
        curvature = information = None
        if config.use_curvature:
            curvature = estimate_curvature(adapter, req, config=config, progress=progress)
        if config.use_information:
            information = compute_information(
                adapter, req, mask=config.mask, chunk_size=config.mask_chunk, progress=progress
            )
    g_term = gate_term(gate, sink=config.sink) if config.use_gate else torch.ones_like(gate)
    s_term = None if curvature is None else normalize(curvature, config.normalization)
    i_term = None if information is None else normalize(information, config.normalization)
    return HetaResult(
        tokens=req.tokens.cpu(),
        target=req.target,
        scores=combine(g_term, s_term, i_term, beta=config.beta, gamma=config.gamma),
        method="heta",
        token_strings=_token_strings(adapter, req.tokens),
        target_log_prob=float(log_probs[req.target_id]),
        gate=gate,
        gate_term=g_term,
        curvature=curvature,
        information=information,
        curvature_term=s_term,
        information_term=i_term,
        config=config,
    )


def _token_strings(adapter: ModelAdapter, tokens: Tensor) -> tuple[str, ...] | None:
    strings = adapter.to_str_tokens(tokens)
    return None if strings is None else tuple(strings)
