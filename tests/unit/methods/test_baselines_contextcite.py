import numpy as np
import pytest
import scipy.optimize
import torch

from heta_lens.hooks import ModelAdapter
from heta_lens.inputs import prepare
from heta_lens.methods.contextcite import (
    METHODS,
    ContextCiteConfig,
    ablation_data,
    contextcite,
    lasso,
    sentence_sources,
    surrogate_weights,
)
from tests.conftest import oracle_tolerance
from tests.unit import oracles
from tests.unit.test_model_state import _assert_same, _snapshot

TARGET = 6


def _objective(X, y, w, b, alpha):
    r = y - X @ w - b
    return 0.5 * float(r @ r) / len(y) + alpha * float(np.abs(w).sum())


@pytest.mark.parametrize("alpha", [0.0, 0.05, 0.3, 5.0])
def test_lasso_orthonormal_design_is_soft_thresholded_least_squares(alpha):
    rng = np.random.default_rng(0)
    n, p = 40, 5
    A = rng.normal(size=(n, p))
    Q, _ = np.linalg.qr(A - A.mean(0))  # centred orthonormal columns
    X = np.sqrt(n) * Q + rng.normal(size=p)  # X_c^T X_c / n = I; offsets go into b
    y = X @ np.array([1.0, -0.5, 0.2, 0.0, 0.05]) + 0.3 + 0.1 * rng.normal(size=n)
    z = (X - X.mean(0)).T @ (y - y.mean()) / n  # least squares on the centred design
    expected = np.sign(z) * np.maximum(np.abs(z) - alpha, 0.0)
    w, b = lasso(X, y, alpha=alpha)
    np.testing.assert_allclose(w, expected, rtol=0, atol=1e-12)
    assert b == pytest.approx(y.mean() - X.mean(0) @ expected, abs=1e-12)
    if alpha == 5.0:
        assert not w.any()


@pytest.mark.parametrize("alpha", [0.01, 0.1])
def test_lasso_matches_scipy_on_the_same_objective(alpha):
    rng = np.random.default_rng(1)
    n, p = 30, 8
    X = (rng.random((n, p)) < 0.5).astype(float)
    y = X @ rng.normal(size=p) + 0.2 * rng.normal(size=n)
    w, b = lasso(X, y, alpha=alpha)

    def split_objective(theta):  # w = u − v with u, v ≥ 0: smooth, bound-constrained
        u, v, c = theta[:p], theta[p : 2 * p], theta[-1]
        r = y - X @ (u - v) - c
        grad_w = -(X.T @ r) / n
        grad = np.concatenate([grad_w + alpha, -grad_w + alpha, [-r.sum() / n]])
        return 0.5 * float(r @ r) / n + alpha * float((u + v).sum()), grad

    res = scipy.optimize.minimize(
        split_objective,
        np.zeros(2 * p + 1),
        jac=True,
        method="L-BFGS-B",
        bounds=[(0, None)] * (2 * p) + [(None, None)],
        options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 20_000},
    )
    w_ref = res.x[:p] - res.x[p : 2 * p]
    assert _objective(X, y, w, b, alpha) <= res.fun + 1e-12
    np.testing.assert_allclose(w, w_ref, atol=1e-5)
    assert b == pytest.approx(res.x[-1], abs=1e-5)


def test_lasso_without_penalty_is_ordinary_least_squares():
    rng = np.random.default_rng(2)
    n, p = 50, 6
    X = rng.normal(size=(n, p)) + 2.0
    y = X @ rng.normal(size=p) - 1.0 + 0.3 * rng.normal(size=n)
    coef = np.linalg.lstsq(np.column_stack([X, np.ones(n)]), y, rcond=None)[0]
    w, b = lasso(X, y, alpha=0.0, tol=1e-14, max_iter=100_000)
    np.testing.assert_allclose(w, coef[:p], rtol=1e-9, atol=1e-10)
    assert b == pytest.approx(coef[p], abs=1e-9)


def test_standardised_surrogate_without_penalty_is_least_squares_on_raw_masks():
    gen = torch.Generator().manual_seed(3)
    keep = torch.rand(64, 7, generator=gen) < 0.5
    y = keep.double() @ torch.randn(7, generator=gen, dtype=torch.float64) + 0.5
    y = y + 0.1 * torch.randn(64, generator=gen, dtype=torch.float64)
    cfg = ContextCiteConfig(alpha=0.0, tol=1e-14, max_iter=100_000)
    got = surrogate_weights(keep, y, config=cfg).numpy()
    design = np.column_stack([keep.double().numpy(), np.ones(64)])
    expected = np.linalg.lstsq(design, y.numpy(), rcond=None)[0][:7]
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-10)


def test_sentence_sources_split_on_terminal_punctuation_and_newlines():
    strings = ["Hello", " world", ". ", " I", " am", "!", "\n", "Why", "?", " tail"]
    assert sentence_sources(strings).tolist() == [0, 0, 0, 1, 1, 1, 2, 3, 3, 4]


def _explicit_y(model, prefix, target_id, x, row, keep_tok):
    embeds = torch.where(keep_tok[:, :, None], x, row)
    with torch.no_grad():
        logits = oracles.full_logits_with_embeds(
            model, prefix[None].expand(len(embeds), -1), embeds
        )
    log_p = logits[:, -1].log_softmax(-1)[:, target_id]
    return log_p - torch.log1p(-log_p.exp())


@pytest.mark.parametrize("mask", ["zero", "token:17"])
def test_surrogate_targets_equal_explicit_reruns(model, tokens, mask):
    cfg = ContextCiteConfig(n_ablations=12, batch_size=5, mask=mask, seed=4)
    adapter = ModelAdapter(model)
    data = ablation_data(adapter, prepare(adapter, tokens, TARGET), config=cfg)
    assert data.keep.shape == (12, TARGET) and data.source_of.tolist() == list(range(TARGET))
    prefix = tokens[:TARGET]
    x = oracles.embeddings(model, prefix)
    row = (
        torch.zeros_like(x[0])
        if mask == "zero"
        else oracles.embeddings(model, torch.tensor([17]))[0]
    )
    expected = _explicit_y(model, prefix, int(tokens[TARGET]), x, row, data.keep)
    torch.testing.assert_close(data.y, expected.double(), **oracle_tolerance(model))


@pytest.mark.bridge
def test_sentence_sources_share_one_weight(monkeypatch):
    from heta_lens.testing import tiny_bridge

    model = tiny_bridge()
    tokens = torch.tensor([1, 5, 7, 3, 9, 11, 4, 8, 6])
    words = ["<s>", " a", " b.", " c", "!", " d", " e", " f", "x"]
    monkeypatch.setattr(ModelAdapter, "to_str_tokens", lambda _self, ids: words[: len(ids)])
    cfg = ContextCiteConfig(n_ablations=16, sources="sentence", alpha=0.0)
    adapter = ModelAdapter(model)
    req = prepare(adapter, tokens, 8)
    data = ablation_data(adapter, req, config=cfg)
    assert data.source_of.tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    x = oracles.embeddings(model, tokens[:8])
    keep_tok = data.keep[:, data.source_of]
    expected = _explicit_y(model, tokens[:8], int(tokens[8]), x, torch.zeros_like(x[0]), keep_tok)
    torch.testing.assert_close(data.y, expected.double(), **oracle_tolerance(model))
    scores = contextcite(model, tokens, target=8, config=cfg).scores
    for sentence in ([0, 1, 2], [3, 4], [5, 6, 7]):
        assert torch.equal(scores[sentence], scores[sentence[0]].expand(len(sentence)))


@pytest.mark.bridge
def test_sentence_sources_need_a_tokenizer(monkeypatch):
    from heta_lens.testing import tiny_bridge

    monkeypatch.setattr(ModelAdapter, "to_str_tokens", lambda _self, _ids: None)
    cfg = ContextCiteConfig(sources="sentence")
    with pytest.raises(ValueError, match="tokenizer"):
        contextcite(tiny_bridge(), torch.tensor([1, 2, 3]), config=cfg)


def test_deterministic_under_seed_and_model_untouched(model, tokens):
    model(tokens[None])  # a bridge installs its lazy hooks on the first call
    model.train()
    before = _snapshot(model)
    a = contextcite(model, tokens, target=TARGET)
    b = contextcite(model, tokens, target=TARGET)
    c = contextcite(model, tokens, target=TARGET, config=ContextCiteConfig(seed=1))
    _assert_same(before, _snapshot(model))
    assert a.scores.shape == (TARGET,) and a.method == "contextcite"
    assert torch.equal(a.scores, b.scores)
    assert not torch.equal(a.scores, c.scores)


def test_entries_and_config_validation():
    assert [e.name for e in METHODS] == ["contextcite"]
    assert METHODS[0].default_config == ContextCiteConfig()
    for bad in ({"keep_prob": 1.0}, {"alpha": -1.0}, {"n_ablations": 1}, {"batch_size": 0}):
        with pytest.raises(ValueError):
            ContextCiteConfig(**bad)
