"""The loaders on the real SmolLM2-135M (slow): LongRA's filter and the curated top-k filter
checked against plain full forwards of the model."""

from pathlib import Path

import pytest
import torch

from heta_lens.evals.datasets import load_curated, load_longra

pytestmark = [pytest.mark.slow, pytest.mark.bridge]


@pytest.fixture(scope="module")
def model():
    from heta_lens import load_model

    return load_model("smollm2-135m")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HETA_LENS_CACHE", str(tmp_path / "cache"))


def _greedy(model, ids: list[int]) -> int:
    with torch.no_grad():
        return int(model(torch.tensor([ids]))[0, -1].argmax())


def test_longra_survivors_are_predicted_with_and_without_distractor(model):
    instances = load_longra(model, limit=3, progress=False)
    assert len(instances) == 3
    for inst in instances:
        assert list(inst.tokens) == model.to_tokens(inst.text)[0].tolist()
        target = inst.targets[0]
        assert target == len(inst.tokens) - 1
        prompt = list(inst.tokens[:target])
        assert _greedy(model, prompt) == inst.tokens[target]
        removed = set(inst.regions["distractor"])
        assert (
            _greedy(model, [t for i, t in enumerate(prompt) if i not in removed])
            == (inst.tokens[target])
        )
        strings = model.to_str_tokens(torch.tensor(inst.tokens))
        assert (
            "".join(strings[p] for p in inst.regions["antecedent"]).strip()
            == (inst.meta["antecedent_word"])
        )
        distractor = "".join(strings[p] for p in inst.regions["distractor"]).strip()
        assert distractor.startswith("(") and distractor.endswith(").")


def test_curated_survivors_rank_in_top_k(model):
    instances = load_curated(model, limit=3, top_k=10, progress=False)
    assert len(instances) == 3
    for inst in instances:
        with torch.no_grad():
            logits = model(torch.tensor([inst.tokens]))[0, -2].log_softmax(-1)
        rank = int((logits > logits[inst.tokens[-1]]).sum())
        assert rank == inst.meta["answer_rank"] < 10
        answer = inst.meta["answer"]
        first = model.to_str_tokens(torch.tensor(inst.tokens[-1:]))[0]
        assert (" " + answer).startswith(first)
