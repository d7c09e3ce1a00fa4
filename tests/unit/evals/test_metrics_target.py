"""Target-side (log p(target)) Soft-NS/NC, hard-top-k and AOPC: hand-computed values, explicit
reruns of every masked copy, and closed forms on the one-position model."""

import math

import pytest
import torch

from heta_lens.evals.metrics import perturbation_metrics, soft_scores
from heta_lens.evals.metrics.target import aopc_logp, hard_logp, soft_logp
from heta_lens.hooks import ModelAdapter
from heta_lens.masking import mask_rows
from tests.conftest import make_model, model_params, oracle_tolerance
from tests.unit import oracles
from tests.unit.evals.test_metrics_soft import one_hot, one_position_model

TOKENS = torch.tensor([1, 5, 7, 3, 9, 11, 4, 8, 2, 6, 13, 10])
TARGET = 10
SCORES = torch.tensor([0.3, -0.1, 0.9, 0.3, 0.0, 1.2, 0.3, -0.5, 0.2, 0.9], dtype=torch.float64)
HARD = (0.1, 0.2, 0.3)
AOPC = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def _log_p(model, prefix: torch.Tensor, embeds: torch.Tensor, target_id: int) -> float:
    """Oracle: one explicit full forward of one embedding copy, log p(target) in float64."""
    with torch.no_grad():
        logits = oracles.full_logits_with_embeds(model, prefix[None], embeds[None])
    return float(logits[0, -1].double().log_softmax(-1)[target_id])


def _own_prediction(model, tokens: torch.Tensor, target: int) -> torch.Tensor:
    """``tokens`` with ``tokens[target]`` replaced by the model's greedy token there."""
    with torch.no_grad():
        logits = model(tokens[None, :target])[0, -1]
    out = tokens.clone()
    out[target] = int(logits.argmax())
    return out


def _mean(values) -> float:
    return sum(values) / len(values)


# ---------------------------------------------------------------- pure functions, by hand


def test_soft_logp_by_hand_clamps_and_nan():
    # ℓ = −1, ℓ_0 = −3 (Δ_0 = 2); ℓ_S = −2, −1.5 (mean −1.75); ℓ_C = −1.5, −2.5 (mean −2)
    got = soft_logp(torch.tensor([-1.0, -3.0, -2.0, -1.5, -1.5, -2.5]), n_draws=2)
    assert (got.log_p, got.log_p_zero) == (-1.0, -3.0)
    assert got.log_p_s_draws == (-2.0, -1.5) and got.log_p_c_draws == (-1.5, -2.5)
    assert got.soft_ns == (-1.75 + 3.0) / 2.0 == 0.625
    assert got.soft_nc == (-1.0 + 2.0) / 2.0 == 0.5
    # a mask that raises p(t) on average explains no loss (clamped at 0); NS can exceed 1
    raised = soft_logp(torch.tensor([-1.0, -3.0, -0.5, -0.5]), n_draws=1)
    assert raised.soft_nc == 0.0 and raised.soft_ns == 1.25
    below = soft_logp(torch.tensor([-1.0, -3.0, -4.0, -5.0]), n_draws=1)
    assert below.soft_ns == 0.0 and below.soft_nc == 2.0
    # the empty input does not lower p(t): nothing to normalise by
    for zero in (-1.0, -0.5):
        flat = soft_logp(torch.tensor([-1.0, zero, -2.0, -2.0]), n_draws=1)
        assert math.isnan(flat.soft_ns) and math.isnan(flat.soft_nc)


def test_hard_and_aopc_logp_by_hand():
    hard = hard_logp(torch.tensor([-1.0, -2.0, -4.0, -1.5, -0.5]), n_fractions=2)
    assert hard.nc_per_fraction == (1.0, 3.0) and hard.nc == 2.0
    assert hard.ns_per_fraction == (-0.5, 0.5) and hard.ns == 0.0
    curve = aopc_logp(torch.tensor([-1.0, -5.0, -2.0, -5.0, -4.0, -1.0]), n_steps=2)
    assert curve.log_p_deletion == (-2.0, -5.0) and curve.log_p_insertion == (-4.0, -1.0)
    assert curve.deletion_aopc == (1.0 + 4.0) / 2 and curve.insertion_aopc == (1.0 + 4.0) / 2
    assert curve.to_dict()["deletion_aopc"] == 2.5


def test_wrong_row_counts_are_refused():
    with pytest.raises(ValueError, match=r"2 \+ 2·n_draws = 4 soft copies; got 5"):
        soft_logp(torch.zeros(5), n_draws=1)
    with pytest.raises(ValueError, match=r"1 \+ 2·n_fractions = 5 hard copies; got 4"):
        hard_logp(torch.zeros(4), n_fractions=2)
    with pytest.raises(ValueError, match=r"2 \+ 2·n_steps = 4 AOPC copies; got 3"):
        aopc_logp(torch.zeros(3), n_steps=1)


# ---------------------------------------------------------------- explicit reruns


@pytest.mark.parametrize("model_id", model_params(["hooked-ln", "bridge"]))
@pytest.mark.parametrize("mask", ["zero", "mean"])
def test_every_target_value_equals_an_explicit_rerun(model_id, mask):
    model = make_model(model_id)
    tokens = _own_prediction(model, TOKENS, TARGET)
    n_draws = 3
    got = perturbation_metrics(
        model, tokens, target=TARGET, scores=SCORES, n_draws=n_draws,
        generator=torch.Generator().manual_seed(7), hard_fractions=HARD, aopc_fractions=AOPC,
        mask=mask,
    )  # fmt: skip
    assert got.soft is not None and got.hard is not None and got.aopc is not None
    soft, hard, aopc = got.soft.logp, got.hard.logp, got.aopc.logp
    assert soft is not None and hard is not None and aopc is not None
    # oracle: every copy rebuilt by hand and run on its own
    prefix, tid = tokens[:TARGET], int(tokens[TARGET])
    x = oracles.embeddings(model, prefix)
    with torch.no_grad():
        repl = mask_rows(ModelAdapter(model), x, mask)

    def ell(embeds: torch.Tensor) -> float:
        return _log_p(model, prefix, embeds, tid)

    a = SCORES.clamp_min(0) / SCORES.clamp_min(0).sum()
    u = torch.rand(
        (n_draws, 2, TARGET, x.shape[-1]),
        generator=torch.Generator().manual_seed(7),
        dtype=torch.float64,
    )
    clean, zero = ell(x), ell(torch.zeros_like(x))
    s_draws = [ell(x * (u[k, 0] < a[:, None])) for k in range(n_draws)]
    c_draws = [ell(x * (u[k, 1] < 1 - a[:, None])) for k in range(n_draws)]
    order = sorted(range(TARGET), key=lambda i: (-float(SCORES[i]), i))

    def without(k: int) -> torch.Tensor:
        out = x.clone()
        out[order[:k]] = repl[order[:k]]
        return out

    def only(k: int) -> torch.Tensor:
        out = repl.clone()
        out[order[:k]] = x[order[:k]]
        return out

    rel = oracle_tolerance(model)["rtol"]

    def close(expected):
        return pytest.approx(expected, rel=rel, abs=1e-9)

    assert soft.log_p == close(clean)
    assert soft.log_p_zero == close(zero)
    assert soft.log_p_s_draws == close(s_draws)
    assert soft.log_p_c_draws == close(c_draws)
    assert clean > zero  # the model's own prediction loses log-probability without context
    # the normalised values: the module's formulas on the oracle's log-probabilities (measured:
    # bit-identical to the oracle on both models and masks; the oracle tolerance is kept for
    # BLAS paths whose batched forward rounds differently)
    loss = clean - zero
    assert soft.soft_ns == close(max(0.0, _mean(s_draws) - zero) / loss)
    assert soft.soft_nc == close(max(0.0, clean - _mean(c_draws)) / loss)
    nc = [clean - ell(without(k)) for k in (1, 2, 3)]
    ns = [ell(only(k)) - clean for k in (1, 2, 3)]
    assert hard.nc_per_fraction == close(nc)
    assert hard.ns_per_fraction == close(ns)
    assert hard.nc == close(_mean(nc))
    assert hard.ns == close(_mean(ns))
    ks = range(1, 11)
    deletion, insertion = [ell(without(k)) for k in ks], [ell(only(k)) for k in ks]
    empty = ell(repl)
    assert aopc.log_p_orig == close(clean)
    assert aopc.log_p_empty == close(empty)
    assert aopc.log_p_deletion == close(deletion)
    assert aopc.log_p_insertion == close(insertion)
    assert aopc.deletion_aopc == close(_mean([clean - v for v in deletion]))
    assert aopc.insertion_aopc == close(_mean([v - empty for v in insertion]))
    # same forward as the full-distribution versions: the probability curve is exp of ours
    assert got.aopc.p_deletion == close([math.exp(v) for v in deletion])


@pytest.mark.parametrize("model_id", model_params(["hooked-ln", "bridge"]))
def test_protected_sink_is_kept_in_the_zero_baseline_and_the_empty_end(model_id):
    model = make_model(model_id)
    tokens = _own_prediction(model, TOKENS, TARGET)
    got = perturbation_metrics(
        model, tokens, target=TARGET, scores=SCORES, n_draws=1,
        generator=torch.Generator().manual_seed(0), aopc_fractions=(1.0,), protected=1,
    )  # fmt: skip
    assert got.soft is not None and got.soft.logp is not None
    assert got.aopc is not None and got.aopc.logp is not None
    prefix, tid = tokens[:TARGET], int(tokens[TARGET])
    x = oracles.embeddings(model, prefix)
    sink_only = x.clone()
    sink_only[1:] = 0.0
    expected = _log_p(model, prefix, sink_only, tid)
    rel = oracle_tolerance(model)["rtol"]

    def close(expected):
        return pytest.approx(expected, rel=rel, abs=1e-9)

    assert got.soft.logp.log_p_zero == close(expected)
    assert got.aopc.logp.log_p_empty == close(expected)
    assert got.aopc.logp.log_p_deletion == close([expected])


def test_single_metric_functions_carry_the_target_side_too():
    model = make_model("bridge")
    gen = torch.Generator().manual_seed(3)
    alone = soft_scores(model, TOKENS, target=TARGET, scores=SCORES, n_draws=2, generator=gen)
    shared = perturbation_metrics(
        model, TOKENS, target=TARGET, scores=SCORES, n_draws=2,
        generator=torch.Generator().manual_seed(3),
    )  # fmt: skip
    assert alone.logp is not None and shared.soft is not None and shared.soft.logp is not None
    # the same copies in the same batch: identical numbers
    assert alone.logp == shared.soft.logp


# ---------------------------------------------------------------- closed forms


@pytest.mark.hooked
def test_one_position_model_closed_forms():
    """Only position j moves p(target): ranking it first is perfect on every target-side
    metric, and it has the best deletion AOPC of every ordering tried."""
    j = 4
    model = one_position_model(j)
    tokens = _own_prediction(model, TOKENS, TARGET)
    x = oracles.embeddings(model, tokens[:TARGET])
    tid = int(tokens[TARGET])
    gap = _log_p(model, tokens[:TARGET], x, tid) - _log_p(
        model, tokens[:TARGET], torch.zeros_like(x), tid
    )
    assert gap > 0.05

    def metrics(scores: torch.Tensor):
        got = perturbation_metrics(
            model, tokens, target=TARGET, scores=scores, n_draws=2,
            generator=torch.Generator().manual_seed(0), hard_fractions=HARD,
            aopc_fractions=AOPC,
        )  # fmt: skip
        assert got.soft is not None and got.hard is not None and got.aopc is not None
        assert got.soft.logp is not None and got.hard.logp is not None
        assert got.aopc.logp is not None
        return got.soft.logp, got.hard.logp, got.aopc.logp

    # π ∈ {0, 1}: sufficiency keeps exactly j (ℓ_S = ℓ), comprehensiveness drops exactly j
    # (ℓ_C = ℓ_0), whatever the draws; the one-hot elsewhere does the opposite.
    soft, _, _ = metrics(one_hot(TARGET, j))
    assert soft.soft_ns == pytest.approx(1.0, rel=1e-10)
    assert soft.soft_nc == pytest.approx(1.0, rel=1e-10)
    soft, _, _ = metrics(one_hot(TARGET, 0))
    assert soft.soft_ns == pytest.approx(0.0, abs=1e-10)
    assert soft.soft_nc == pytest.approx(0.0, abs=1e-10)
    perfect = torch.arange(TARGET, 0, -1, dtype=torch.float64)
    perfect[j] = 100.0  # j first, then positions in order
    _, hard, best = metrics(perfect)
    assert best.deletion_aopc == pytest.approx(gap, rel=1e-10)
    assert best.insertion_aopc == pytest.approx(gap, rel=1e-10)
    assert hard.nc == pytest.approx(gap, rel=1e-10) and hard.ns == pytest.approx(0.0, abs=1e-10)
    _, hard, worst = metrics(-perfect)  # j last
    assert worst.deletion_aopc == pytest.approx(gap / 10, rel=1e-10)
    assert worst.insertion_aopc == pytest.approx(gap / 10, rel=1e-10)
    assert hard.nc == pytest.approx(0.0, abs=1e-10) and hard.ns == pytest.approx(-gap, rel=1e-10)
    # j at rank r (0-based): removed from step r + 1 on, so the area is gap·(10 − r)/10
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        scores = torch.rand(TARGET, generator=gen, dtype=torch.float64)
        rank = sorted(range(TARGET), key=lambda i: (-float(scores[i]), i)).index(j)
        _, _, curve = metrics(scores)
        assert curve.deletion_aopc == pytest.approx(gap * (10 - rank) / 10, rel=1e-10)
        assert curve.deletion_aopc <= best.deletion_aopc + 1e-12
