"""Causal and sensitivity metric groups in the runner, HETA weight variants, run.json upgrades."""

import json
from dataclasses import replace

import pytest
import torch

import heta_lens as H
from heta_lens.evals.evaluate import TargetContext, evaluate_target
from heta_lens.evals.methods import beta_sweep, is_heta_family, resolve_method
from heta_lens.evals.metrics.causal import causal_scores, token_effects
from heta_lens.evals.metrics.sensitivity import (
    embedding_noise,
    sensitivity,
    token_noise,
)
from heta_lens.evals.runner import run_eval
from heta_lens.evals.settings import EvalSettings, row_seed
from heta_lens.hooks.guard import hook_point_hook_count
from heta_lens.testing import tiny_bridge
from tests.unit.evals.test_runner import instances

pytestmark = pytest.mark.bridge

BASE = EvalSettings(
    dataset="toy",
    model="tiny-bridge",
    n_draws=1,
    heta_overrides=(("n_probes", 1),),
    metrics=("causal", "sensitivity"),
    causal_draws=2,
    sensitivity_draws=2,
)


def test_sensitivity_hand_values():
    assert sensitivity(torch.ones(3, 5)) == 0.0
    draws = torch.tensor([[1.0, 3.0], [3.0, 1.0]])  # normalised: [.25,.75] and [.75,.25]
    expected = torch.tensor([0.25, 0.75]).std() * 2 / 2  # each column's std, averaged
    assert sensitivity(draws) == pytest.approx(float(expected))
    with pytest.raises(ValueError, match="at least 2 draws"):
        sensitivity(torch.ones(1, 4))


def test_embedding_noise_hits_every_forward_and_is_removed_even_on_error():
    model = tiny_bridge()
    tokens = torch.tensor([1, 5, 7, 5, 9])
    clean = model.embed(tokens[None])[0].detach()
    ids, noise = token_noise(model, tokens, delta=0.3, generator=torch.Generator().manual_seed(1))
    assert ids.tolist() == [1, 5, 7, 9]
    with embedding_noise(model, ids, noise):
        noisy = model.embed(tokens[None])[0].detach()
        other = model.embed(torch.tensor([[2]]))[0, 0].detach()
    torch.testing.assert_close(noisy - clean, noise[torch.tensor([0, 1, 2, 1, 3])])
    torch.testing.assert_close(other, model.embed(torch.tensor([[2]]))[0, 0].detach())
    with pytest.raises(RuntimeError, match="boom"), embedding_noise(model, ids, noise):
        raise RuntimeError("boom")
    torch.testing.assert_close(model.embed(tokens[None])[0].detach(), clean)
    assert not model.embed._forward_hooks
    # ‖ε_v‖ ≈ δ‖e_v‖ on average over many draws
    ratios = []
    for seed in range(200):
        i, n = token_noise(model, tokens, delta=0.3, generator=torch.Generator().manual_seed(seed))
        clean_norm = model.embed(i[None])[0].detach().double().norm(dim=-1)
        ratios.append(n.double().norm(dim=-1) / clean_norm)
    assert float(torch.cat(ratios).pow(2).mean()) == pytest.approx(0.09, rel=0.05)


def test_rows_carry_causal_metrics_equal_to_direct_calls_and_zero_noise_sensitivity():
    model = tiny_bridge()
    instance = instances()[0]
    target = instance.targets[-1]
    settings = replace(BASE, sensitivity_delta=0.0)
    rows = {
        r["method"]: r
        for r in evaluate_target(
            model, instance, target, methods=["heta", "occlusion"], settings=settings
        )
    }
    assert set(rows) == {"heta", "occlusion", "random"}
    tokens = torch.tensor(instance.tokens)
    generator = torch.Generator().manual_seed(row_seed(0, instance.uid, target, "causal"))
    fx = token_effects(model, tokens, target=target, n_draws=2, generator=generator)
    for name, row in rows.items():
        direct = causal_scores(
            model, tokens, target=target, scores=torch.tensor(row["scores"]), effects=fx
        )
        assert row["metrics"]["patch_corr"] == pytest.approx(direct.patch_corr, abs=1e-9)
        assert row["metrics"]["intervention_at_5"] == pytest.approx(direct.intervention_at_k)
        assert row["metrics"]["misattribution"] == direct.misattribution
        # δ = 0: the reruns see the clean embeddings, and every method here is deterministic
        assert row["metrics"]["sensitivity"] == pytest.approx(0.0, abs=1e-12), name
    assert hook_point_hook_count(model) == 0
    assert not model.embed._forward_hooks


def test_sensitivity_rows_rerun_each_method_under_the_same_noise():
    model = tiny_bridge()
    instance = instances()[1]
    target = instance.targets[-1]
    settings = replace(BASE, metrics=("sensitivity",), sensitivity_delta=0.2)
    row = next(
        r
        for r in evaluate_target(model, instance, target, methods=["occlusion"], settings=settings)
        if r["method"] == "occlusion"
    )
    context = TargetContext(model, instance, target, settings)
    draws = []
    for k in range(settings.sensitivity_draws):
        with embedding_noise(model, *context.noise(k)):
            draws.append(H.get_method("occlusion")(model, context.tokens, target=target).scores)
    assert row["metrics"]["sensitivity"] == pytest.approx(sensitivity(torch.stack(draws)))
    assert row["metrics"]["sensitivity"] > 0


def test_beta_variants_equal_attribute_with_those_weights():
    spec, config = resolve_method("heta_no_gate@beta=0.8")
    assert spec.name == "heta_no_gate"
    assert (config.beta, config.gamma) == (0.8, pytest.approx(0.2))
    assert beta_sweep()[2] == "heta" and all(is_heta_family(m) for m in beta_sweep())
    for bad, message in [
        ("heta@beta=1.5", "in \\[0, 1\\]"),
        ("occlusion@beta=0.2", "only HETA-family"),
        ("heta@gamma=0.2", "bad method variant"),
        ("nope@beta=0.2", "unknown method"),
    ]:
        with pytest.raises(ValueError, match=message):
            resolve_method(bad)
    model = tiny_bridge()
    instance = instances()[2]
    target = instance.targets[0]
    settings = replace(BASE, metrics=("soft",))
    rows = {
        r["method"]: r
        for r in evaluate_target(
            model, instance, target, methods=["heta", "heta@beta=0.2"], settings=settings
        )
    }
    want = H.attribute(
        model,
        torch.tensor(instance.tokens),
        target=target,
        config=settings.heta_config(replace(H.HetaConfig(), beta=0.2, gamma=0.8)),
    )
    got = torch.tensor(rows["heta@beta=0.2"]["scores"], dtype=want.scores.dtype)
    torch.testing.assert_close(got, want.scores.detach(), rtol=0, atol=0)
    assert rows["heta"]["scores"] != rows["heta@beta=0.2"]["scores"]


def test_runs_stored_before_new_settings_existed_still_resume(tmp_path):
    out = tmp_path / "old"
    settings = EvalSettings(dataset="toy", model="tiny-bridge", n_draws=1, metrics=("hard",))
    run_eval(
        tiny_bridge,
        instances()[:1],
        methods=["occlusion"],
        settings=settings,
        out=out,
        progress=False,
    )
    stored = json.loads((out / "run.json").read_text())
    for key in ("corruption", "noise_scale", "causal_draws", "sensitivity_delta"):
        del stored["settings"][key]  # as written by a version without these settings
    (out / "run.json").write_text(json.dumps(stored))
    rows = run_eval(
        tiny_bridge,
        instances()[:2],
        methods=["occlusion"],
        settings=settings,
        out=out,
        progress=False,
    )
    assert {r["uid"] for r in rows} == {"toy/0", "toy/1"}
    changed = replace(settings, corruption="zero")
    with pytest.raises(ValueError, match="different settings .*corruption"):
        run_eval(
            tiny_bridge,
            instances()[:1],
            methods=["occlusion"],
            settings=changed,
            out=out,
            progress=False,
        )
