"""One shared forward for Soft-NS/NC, hard-top-k KL and AOPC: explicit reruns, fewer copies."""

import math
from collections.abc import Callable
from typing import TypeVar

import pytest
import torch

from heta_lens.evals.metrics import aopc_curves, hard_topk_kl, perturbation_metrics
from heta_lens.evals.metrics._common import distinct_rows
from heta_lens.hooks import ModelAdapter, names
from heta_lens.masking import mask_rows
from tests.conftest import make_model, model_params, oracle_tolerance
from tests.unit import oracles

TOKENS = torch.tensor([1, 5, 7, 3, 9, 11, 4, 8, 2, 6, 13, 10])
TARGET = 10
SCORES = torch.tensor([0.3, -0.1, 0.9, 0.3, 0.0, 1.2, 0.3, -0.5, 0.2, 0.9], dtype=torch.float64)
HARD = (0.1, 0.2, 0.3)
AOPC = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
T = TypeVar("T")


def _gen(seed: int = 7) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _forwarded_rows(model, run: Callable[[], T]) -> tuple[T, list[int]]:
    """Run ``run()`` and record the batch size of every forward through block 0."""
    sizes: list[int] = []

    def count(act, hook):  # noqa: ARG001
        sizes.append(int(act.shape[0]))

    with model.hooks(fwd_hooks=[(names.resid_pre(0), count)]):
        out = run()
    return out, sizes


def _probs(model, prefix: torch.Tensor, embeds: torch.Tensor) -> torch.Tensor:
    """Oracle: one explicit forward of one embedding copy, next-token probabilities."""
    with torch.no_grad():
        logits = oracles.full_logits_with_embeds(model, prefix[None], embeds[None])
    return logits[0, -1].double().softmax(-1)


def _hellinger(p: torch.Tensor, q: torch.Tensor) -> float:
    return float((p.sqrt() - q.sqrt()).square().sum() / math.sqrt(2.0))


def _kl(q: torch.Tensor, p: torch.Tensor) -> float:
    return float((q * (q.log() - p.log())).sum())


@pytest.mark.parametrize("model_id", model_params(["hooked-ln", "hooked-gqa", "bridge"]))
@pytest.mark.parametrize("mask", ["zero", "mean", "token:17"])
def test_every_metric_of_the_shared_forward_equals_explicit_reruns(model_id, mask):
    model = make_model(model_id)
    n_draws = 3
    got = perturbation_metrics(
        model,
        TOKENS,
        target=TARGET,
        scores=SCORES,
        n_draws=n_draws,
        generator=_gen(),
        hard_fractions=HARD,
        aopc_fractions=AOPC,
        mask=mask,
    )
    # oracle: every copy rebuilt by hand and run on its own
    prefix, target_id = TOKENS[:TARGET], int(TOKENS[TARGET])
    x = oracles.embeddings(model, prefix)
    with torch.no_grad():
        repl = mask_rows(ModelAdapter(model), x, mask)
    q = _probs(model, prefix, x)
    a = SCORES.clamp_min(0) / SCORES.clamp_min(0).sum()
    u = torch.rand((n_draws, 2, TARGET, x.shape[-1]), generator=_gen(), dtype=torch.float64)
    s0 = 1 - _hellinger(_probs(model, prefix, torch.zeros_like(x)), q)
    soft_s = [
        1 - _hellinger(_probs(model, prefix, x * (u[k, 0] < a[:, None])), q) for k in range(3)
    ]
    soft_c = [
        _hellinger(_probs(model, prefix, x * (u[k, 1] < 1 - a[:, None])), q) for k in range(3)
    ]
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
    assert got.soft is not None and got.hard is not None and got.aopc is not None
    assert got.soft.s0 == pytest.approx(s0, rel=rel, abs=1e-9)
    assert got.soft.soft_s_draws == pytest.approx(soft_s, rel=rel, abs=1e-9)
    assert got.soft.soft_c_draws == pytest.approx(soft_c, rel=rel, abs=1e-9)
    assert got.hard.k == (1, 2, 3) and got.hard.mask == mask
    assert got.hard.nc_per_fraction == pytest.approx(
        [_kl(q, _probs(model, prefix, without(k))) for k in (1, 2, 3)], rel=rel, abs=1e-9
    )
    assert got.hard.ns_per_fraction == pytest.approx(
        [-_kl(q, _probs(model, prefix, only(k))) for k in (1, 2, 3)], rel=rel, abs=1e-9
    )
    ks = range(1, 11)  # ctx = 10, fractions 0.1 .. 1.0
    assert got.aopc.k == tuple(ks) and got.aopc.mask == mask
    assert got.aopc.p_orig == pytest.approx(float(q[target_id]), rel=rel, abs=1e-9)
    assert got.aopc.p_empty == pytest.approx(
        float(_probs(model, prefix, repl)[target_id]), rel=rel, abs=1e-9
    )
    assert got.aopc.p_deletion == pytest.approx(
        [float(_probs(model, prefix, without(k))[target_id]) for k in ks], rel=rel, abs=1e-9
    )
    assert got.aopc.p_insertion == pytest.approx(
        [float(_probs(model, prefix, only(k))[target_id]) for k in ks], rel=rel, abs=1e-9
    )


@pytest.mark.parametrize(("mask", "distinct"), [("zero", 28), ("mean", 29)])
def test_eval_defaults_forward_28_distinct_copies_of_39_in_one_forward(mask, distinct):
    # Soft: q, p_0, 4 + 4 masked (10). Hard: q, 3 masked, 3 kept (7) — all repeated in AOPC
    # (same k = 1/2/3 at 0.1/0.2/0.3 of ctx 10). AOPC: q, empty, 10 + 10 steps (22), whose
    # steps at fraction 1 repeat its ends. Shared: q in all three; with the zero mask AOPC's
    # empty input is Soft's p_0 (with "mean" it is not: one copy more).
    model = make_model("bridge")
    got, sizes = _forwarded_rows(
        model,
        lambda: perturbation_metrics(
            model,
            TOKENS,
            target=TARGET,
            scores=SCORES,
            n_draws=4,
            generator=_gen(),
            hard_fractions=HARD,
            aopc_fractions=AOPC,
            mask=mask,
        ),
    )
    assert (got.n_copies, got.n_forwarded) == (39, distinct)
    assert sizes == [distinct]


def test_single_metric_functions_forward_each_distinct_copy_once():
    model = make_model("bridge")
    _, sizes = _forwarded_rows(
        model, lambda: aopc_curves(model, TOKENS, target=TARGET, scores=SCORES, fractions=AOPC)
    )
    assert sizes == [20]  # 22 copies; the steps at fraction 1 are the two ends
    _, sizes = _forwarded_rows(
        model, lambda: hard_topk_kl(model, TOKENS, target=TARGET, scores=SCORES, fractions=HARD)
    )
    assert sizes == [7]


def test_distinct_rows_is_exact_and_keeps_first_occurrences():
    a, b = torch.ones(2, 3), torch.zeros(2, 3)
    c = b.clone()
    c[1, 2] = -0.0  # equal as numbers, different bits: kept apart
    d = a.clone()
    d[0, 0] = 1.0 + 1e-7  # one float32 ulp away from a
    first, inverse = distinct_rows(torch.stack([b, a, b, c, a, d]))
    assert first.tolist() == [0, 1, 3, 5]
    assert inverse.tolist() == [0, 1, 0, 2, 1, 3]


def test_only_the_requested_metrics_and_clear_errors():
    model = make_model("bridge")
    got = perturbation_metrics(model, TOKENS, target=TARGET, scores=SCORES, hard_fractions=HARD)
    assert got.soft is None and got.aopc is None and got.hard is not None
    assert (got.n_copies, got.n_forwarded) == (7, 7)
    with pytest.raises(ValueError, match="no metric requested"):
        perturbation_metrics(model, TOKENS, target=TARGET, scores=SCORES)
    with pytest.raises(ValueError, match="needs a generator"):
        perturbation_metrics(model, TOKENS, target=TARGET, scores=SCORES, n_draws=2)
    with pytest.raises(ValueError, match="n_draws must be >= 1"):
        perturbation_metrics(
            model, TOKENS, target=TARGET, scores=SCORES, n_draws=0, generator=_gen()
        )
    with pytest.raises(ValueError, match="fractions must lie in"):
        perturbation_metrics(model, TOKENS, target=TARGET, scores=SCORES, aopc_fractions=(0.0, 0.5))
    with pytest.raises(ValueError, match="unknown mask scheme"):
        perturbation_metrics(
            model, TOKENS, target=TARGET, scores=SCORES, hard_fractions=HARD, mask="blank"
        )
    assert not any(m._forward_hooks for m in model.modules())
