import pytest
import torch

from heta_lens.hooks import ModelAdapter
from heta_lens.methods.reagent import (
    METHODS,
    ReagentConfig,
    reagent,
    reagent_core,
    topk_candidates,
)
from tests.unit.test_model_state import _assert_same, _snapshot

V, TARGET_ID, J = 20, 5, 4
PREFIX = torch.tensor([1, 7, 3, 9, 11, 2, 8, 14, 6, 12])


class Oracle:
    """Target is the top prediction iff position J holds its original token, else the last."""

    def __init__(self, mode: str = "position") -> None:
        self.mode, self.calls, self.rows = mode, 0, 0

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.rows += ids.shape[0]
        logits = torch.zeros(ids.shape[0], V, dtype=torch.float64)
        if self.mode == "always":
            kept = torch.ones(ids.shape[0], dtype=torch.bool)
        elif self.mode == "never":
            kept = torch.zeros(ids.shape[0], dtype=torch.bool)
        else:
            kept = ids[:, J] == PREFIX[J]
        logits[:, TARGET_ID] = torch.where(kept, 6.0, -6.0)
        return logits.log_softmax(-1)


def _candidates(k: int = 3) -> torch.Tensor:
    """Per-position candidates that never contain the original token."""
    return torch.stack([(PREFIX[i] + 1 + torch.arange(k)) % V for i in range(PREFIX.numel())])


@pytest.mark.parametrize("candidates", [None, _candidates()], ids=["random", "topk"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_deciding_token_ranks_first(candidates, seed):
    cfg = ReagentConfig(keep_top=1, n_probes=4, max_steps=300, seed=seed)
    run = reagent_core(PREFIX, TARGET_ID, Oracle(), candidates=candidates, d_vocab=V, config=cfg)
    # keep_top=1: a probe stops only once J is its single most important token, so J is the
    # argmax of every stopped probe's distribution and hence of their mean.
    assert bool(run.stopped.all())
    assert int(run.scores.argmax()) == J
    assert float(run.scores.sum()) == pytest.approx(1.0, abs=1e-12)


def test_stops_after_one_step_when_the_target_always_survives():
    oracle = Oracle("always")
    cfg = ReagentConfig(n_probes=5, max_steps=50)
    run = reagent_core(PREFIX, TARGET_ID, oracle, candidates=None, d_vocab=V, config=cfg)
    assert run.steps == 1 and bool(run.stopped.all())
    # unperturbed + first replacements + one round (stopping checks and next replacements)
    assert oracle.calls == 3 and oracle.rows == 1 + 5 + 2 * 5


def test_never_stopping_runs_max_steps_and_averages_all_probes():
    oracle = Oracle("never")
    cfg = ReagentConfig(n_probes=3, max_steps=7)
    run = reagent_core(PREFIX, TARGET_ID, oracle, candidates=None, d_vocab=V, config=cfg)
    assert run.steps == 7 and not bool(run.stopped.any())
    assert oracle.calls == 2 + 7  # the last round carries no further replacements
    assert oracle.rows == 1 + 3 + 6 * (2 * 3) + 3
    assert float(run.scores.sum()) == pytest.approx(1.0, abs=1e-12)


def test_core_is_deterministic_under_its_seed():
    def run(seed: int) -> torch.Tensor:
        cfg = ReagentConfig(n_probes=3, max_steps=20, seed=seed)
        return reagent_core(
            PREFIX, TARGET_ID, Oracle(), candidates=_candidates(), d_vocab=V, config=cfg
        ).scores

    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))


def test_topk_candidates_equal_explicit_prefix_reruns(model, tokens):
    prefix = tokens[:6]
    got = topk_candidates(ModelAdapter(model), prefix, k=4)
    assert torch.equal(got[0], prefix[:1].expand(4))
    with torch.no_grad():
        for i in range(1, 6):
            ranked = model(prefix[None, :i])[0, -1].argsort(descending=True)
            expected = ranked[ranked != prefix[i]][:4]
            assert torch.equal(got[i], expected)


@pytest.mark.parametrize("replacement", ["model_topk", "random"])
def test_model_run_deterministic_seeded_and_state_preserving(model, tokens, replacement):
    model(tokens[None])  # a bridge installs its lazy hooks on the first call
    model.train()
    before = _snapshot(model)
    cfg = ReagentConfig(
        n_probes=3, max_steps=6, keep_top=2, replacement=replacement, top_k_replacements=5
    )
    a = reagent(model, tokens, target=5, config=cfg)
    b = reagent(model, tokens, target=5, config=cfg)
    c = reagent(model, tokens, target=5, config=ReagentConfig(**{**cfg.__dict__, "seed": 1}))
    _assert_same(before, _snapshot(model))
    assert a.scores.shape == (5,) and a.method == "reagent"
    assert torch.equal(a.scores, b.scores)
    assert not torch.equal(a.scores, c.scores)
    assert bool((a.scores > 0).all())
    assert float(a.scores.sum()) == pytest.approx(1.0, abs=1e-9)


def test_entries_and_config_validation(model, tokens):
    assert [e.name for e in METHODS] == ["reagent"]
    assert METHODS[0].default_config == ReagentConfig()
    for bad in ({"replace_ratio": 0.0}, {"top_n": 0}, {"max_steps": 0}, {"batch_size": 0}):
        with pytest.raises(ValueError):
            ReagentConfig(**bad)
    with pytest.raises(ValueError, match="top_k_replacements"):
        reagent(model, tokens, config=ReagentConfig(top_k_replacements=50, max_steps=1))


@pytest.mark.parametrize("top_n", [1, 3])
def test_diagnostics_equal_a_direct_core_run(model, tokens, top_n):
    cfg = ReagentConfig(n_probes=4, max_steps=12, keep_top=2, top_k_replacements=5, top_n=top_n)
    result = reagent(model, tokens, target=6, config=cfg)
    adapter = ModelAdapter(model)
    prefix = tokens[:6]

    def next_log_probs(ids: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(ids)[:, -1].log_softmax(-1)

    run = reagent_core(
        prefix,
        int(tokens[6]),
        next_log_probs,
        candidates=topk_candidates(adapter, prefix, k=5),
        d_vocab=adapter.d_vocab,
        config=cfg,
    )
    assert result.diagnostics == {
        "steps": run.steps,
        "probes_stopped": int(run.stopped.sum()),
        "n_probes": 4,
    }
    torch.testing.assert_close(result.scores, run.scores.to(result.scores.dtype))


def test_diagnostics_when_the_target_is_always_in_the_top_n(model, tokens):
    # top_n = d_vocab: every stopping check succeeds, so each probe stops after one step
    cfg = ReagentConfig(n_probes=3, max_steps=50, top_n=ModelAdapter(model).d_vocab)
    result = reagent(model, tokens, target=6, config=cfg)
    assert result.diagnostics == {"steps": 1, "probes_stopped": 3, "n_probes": 3}


def test_rows_store_diagnostics_and_results_roundtrip_them(tmp_path):
    from dataclasses import replace

    from heta_lens.evals.runner import run_eval
    from heta_lens.result import from_dict
    from heta_lens.testing import tiny_bridge
    from tests.unit.evals.test_runner import SETTINGS, instances

    rows = run_eval(
        tiny_bridge,
        instances()[:1],
        methods=["reagent", "occlusion"],
        settings=replace(SETTINGS, metrics=("soft",)),
        out=tmp_path,
        progress=False,
    )
    by_method = {(r["method"], r["target"]): r for r in rows}
    instance = instances()[0]
    model = tiny_bridge()
    for target in instance.targets:
        direct = reagent(model, torch.tensor(instance.tokens), target=target)
        assert by_method["reagent", target]["diagnostics"] == direct.diagnostics
        assert by_method["reagent", target]["scores"] == direct.scores.tolist()
        assert "diagnostics" not in by_method["occlusion", target]
        assert from_dict(direct.to_dict()).diagnostics == direct.diagnostics
    from heta_lens.evals.summary import csv_table, markdown_table, summarize

    summaries = {s.method: s for s in summarize(rows)}
    stored = [by_method["reagent", t]["diagnostics"] for t in instance.targets]
    expected = {k: sum(d[k] for d in stored) / len(stored) for k in stored[0]}
    assert summaries["reagent"].diagnostics == pytest.approx(expected)
    assert summaries["occlusion"].diagnostics == {}
    listed = list(summaries.values())
    assert "reagent diagnostics (mean per target): steps" in markdown_table(listed)
    assert "reagent,diagnostics_probes_stopped," in csv_table(listed)
