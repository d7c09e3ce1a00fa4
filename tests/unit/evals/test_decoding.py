"""Decoding-grid invariance: the sampler against Hugging Face's logits processors, dedupe,
and the invariance table on hand-made rows."""

from typing import Any

import pytest
import torch
from transformers import (
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from heta_lens.evals.datasets import EvalInstance
from heta_lens.evals.decoding import (
    DecodingConfig,
    decoding_grid,
    decoding_instances,
    invariance_table,
    next_token_distribution,
)
from heta_lens.testing import tiny_bridge

BAD_GRID: Any = "huge"


@pytest.mark.parametrize(
    "config",
    [
        DecodingConfig(0.5, 0.9, 20, 1.2, 0),
        DecodingConfig(0.9, 0.8, 5, 1.0, 0),
        DecodingConfig(0.2, 0.95, 100, 1.2, 0),
        DecodingConfig(1.3, 0.5, 50, 1.5, 0),
    ],
    ids=lambda c: c.name,
)
def test_distribution_equals_hugging_face_processors(config):
    gen = torch.Generator().manual_seed(1)
    logits = 3 * torch.randn(200, generator=gen, dtype=torch.float64)
    seen = torch.tensor([3, 17, 17, 150, 42])
    ours = next_token_distribution(logits, seen, config)
    scores = logits[None].clone()
    ids = seen[None]
    for processor in (
        RepetitionPenaltyLogitsProcessor(config.repetition_penalty),
        TemperatureLogitsWarper(config.temperature),
        TopKLogitsWarper(config.top_k),
        TopPLogitsWarper(config.top_p),
    ):
        scores = processor(ids, scores)
    torch.testing.assert_close(ours, scores[0].softmax(-1), rtol=1e-12, atol=1e-12)
    assert float(ours.sum()) == pytest.approx(1.0)
    assert int((ours > 0).sum()) <= config.top_k


def test_grids():
    full = decoding_grid()
    assert len(full) == 162 and len({c.name for c in full}) == 162
    assert {c.repetition_penalty for c in full} == {1.0, 1.2}
    assert len(decoding_grid("small")) == 9
    with pytest.raises(ValueError, match="unknown grid"):
        decoding_grid(BAD_GRID)


def test_identical_continuations_are_evaluated_once():
    model = tiny_bridge()
    base = EvalInstance(
        uid="toy-0",
        dataset="tellmewhy",
        text="",
        tokens=(1, 5, 7, 3, 9, 11, 4, 8, 6, 5, 3, 2, 9, 7),
        targets=(5, 7, 9, 11, 13),
        meta={"n_prompt_tokens": 4, "prompt": "w5 w7 w3"},
    )
    same = DecodingConfig(0.5, 0.9, 20, 1.0, 0)
    grid = [same, DecodingConfig(0.5, 0.9, 20, 1.0, 0), DecodingConfig(0.9, 0.95, 50, 1.2, 1)]
    out = decoding_instances(model, [base], grid)
    assert out[0] is base
    sampled = out[1:]
    assert 1 <= len(sampled) <= 2
    assert sampled[0].meta["configs"][:2] == [same.name, same.name]
    for instance in sampled:
        assert instance.tokens[:4] == base.tokens[:4] and len(instance.tokens) == 14
        assert instance.targets == base.targets
    again = decoding_instances(model, [base], grid)
    assert [i.tokens for i in again] == [i.tokens for i in out]  # seeded: reproducible


def test_invariance_table_hand_values():
    def inst(uid, configs=None):
        meta = {"configs": configs} if configs else {}
        return EvalInstance(
            uid=uid, dataset="d", text="", tokens=(1, 2, 3), targets=(2,), meta=meta
        )

    instances = [inst("p0"), inst("p1"), inst("p0/a", ["g1"]), inst("p1/b", ["g1", "g2"])]
    instances.append(inst("p0/c", ["g2"]))
    values = {"p0": 1.0, "p1": 3.0, "p0/a": 2.0, "p1/b": 4.0, "p0/c": 1.0}
    rows = [{"method": "m", "uid": u, "metrics": {"soft_nc": v}} for u, v in values.items()]
    table = invariance_table(rows, instances, metrics=("soft_nc",))
    # greedy mean 2.0; g1 mean (2+4)/2 = 3.0; g2 mean (4+1)/2 = 2.5 -> max change 0.5
    assert "| m | soft_nc | 2.0000 | 2.5000 | 3.0000 | 0.50 |" in table
