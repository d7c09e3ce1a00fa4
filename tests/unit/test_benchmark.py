import pytest
import torch
from scipy.stats import spearmanr

import heta_lens as H
from heta_lens.benchmark import (
    growth_exponent,
    measure,
    occlusion_captum,
    sequential_curvature,
    sequential_information,
    top_overlap,
)
from heta_lens.curvature.probes import rademacher_probes
from heta_lens.evals.metrics.rank import spearman
from heta_lens.hooks import ModelAdapter, preserved_model_state
from heta_lens.inputs import prepare
from heta_lens.presets import PRESETS, preset


def test_sequential_reference_equals_batched_engine(model, tokens):
    adapter = ModelAdapter(model)
    req = prepare(adapter, tokens, None)
    probes = rademacher_probes(
        2, 6, model.cfg.d_model, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    with preserved_model_state(model):
        s_seq = sequential_curvature(adapter, req, probes)
        i_seq = sequential_information(adapter, req, "zero")
    torch.testing.assert_close(
        H.curvature_sensitivity(model, tokens, probes=probes), s_seq, rtol=1e-9, atol=1e-10
    )
    torch.testing.assert_close(H.information_gain(model, tokens), i_seq, rtol=1e-9, atol=1e-13)


def test_captum_occlusion_is_leave_one_out_log_prob_drop(model, tokens):
    drop = occlusion_captum(model, tokens)
    with torch.no_grad():
        base = model(tokens[None, :-1])[0, -1].log_softmax(-1)[tokens[-1]]
        _, cache = model.run_with_cache(tokens[None, :-1])
        x = cache["hook_embed"][0]
        for i in range(6):
            masked = x.clone()
            masked[i] = 0.0
            replace = lambda act, hook, m=masked: m[None]  # noqa: ARG005, E731
            logits = model.run_with_hooks(tokens[None, :-1], fwd_hooks=[("hook_embed", replace)])
            expected = base - logits[0, -1].log_softmax(-1)[tokens[-1]]
            assert float(drop[i]) == pytest.approx(float(expected), rel=1e-6, abs=1e-9)


def test_spearman_matches_scipy_with_ties():
    a = torch.tensor([1.0, 2.0, 2.0, 5.0, 3.0, 3.0, 0.5])
    b = torch.tensor([0.1, 0.4, 0.2, 0.9, 0.3, 0.8, 0.0])
    assert spearman(a, b) == pytest.approx(spearmanr(a.numpy(), b.numpy()).statistic, abs=1e-12)
    assert spearman(a, a) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)


def test_top_overlap_and_growth_exponent():
    a = torch.tensor([5.0, 4, 3, 2, 1, 0])
    assert top_overlap(a, a, k=3) == 1.0
    assert top_overlap(a, -a, k=3) == 0.0
    assert growth_exponent([32, 64, 128], [1.0, 4.0, 16.0]) == pytest.approx(2.0)


def test_full_memory_probe_runs_one_chunk(model, tokens):
    from heta_lens.benchmark import full_memory_probe

    before = [p.requires_grad for p in model.parameters()]
    full_memory_probe(model, tokens, H.HetaConfig.flat(hvp_chunk=3))
    assert [p.requires_grad for p in model.parameters()] == before


def test_measure_reports_time_and_memory():
    value, m = measure(lambda: torch.ones(4_000_000).sum())
    assert float(value) == 4_000_000.0
    assert m.seconds > 0 and m.peak_rss_mb > 10


def test_presets_are_valid_and_named():
    assert {"full", "row", "LS", "LR", "WIN", "fast"} <= set(PRESETS)
    assert preset("row", n_probes=3).curvature == H.RowBlock(n_probes=3)
    with pytest.raises(ValueError, match="fast"):
        preset("turbo")


@pytest.mark.bridge
def test_all_bench_sections_run_on_a_tiny_model(tmp_path):
    import json

    from heta_lens.benchmark_run import run_benchmark
    from heta_lens.testing import tiny_bridge

    words = " ".join(f"w{i % 40 + 3}" for i in range(40))
    (tmp_path / "narrativeqa").mkdir()
    (tmp_path / "narrativeqa" / "summaries_valid_test.jsonl").write_text(
        json.dumps({"summary_detok": words}) + "\n"
    )
    (tmp_path / "reagent" / "sequence_level").mkdir(parents=True)
    for name in ("wikitext.txt", "tellmewhy2.txt"):
        (tmp_path / "reagent" / "sequence_level" / name).write_text("w5 w7 w9\nw4 w8 w12 w3\n")
    out = tmp_path / "RESULTS.md"
    emitted: list[str] = []
    text = run_benchmark(
        tiny_bridge(),
        data_dir=tmp_path,
        model_name="tiny",
        sections=[1, 2, 3, 4, 5, 6],
        lengths=[4, 8],
        n_prompts=3,
        out=out,
        emit=emitted.append,
    )
    assert out.read_text() == text and len(emitted) == 6
    for heading in ("## 1.", "## 2.", "## 3.", "## 4.", "## 5.", "## 6."):
        assert heading in text
    assert "speed-up" in text and "ratio to occlusion" in text and "exponent" in text
    assert "one shared forward" in text
