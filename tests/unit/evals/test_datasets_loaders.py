"""Model-dependent loaders on a tiny random Llama bridge that uses SmolLM2's real tokenizer:
region alignment, the top-k filter, greedy sequence targets, caching and loader errors."""

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from heta_lens.evals.datasets import (
    PROMPT_TEMPLATE,
    build_curated,
    curated_survival,
    load_curated,
    load_longra,
    load_sequence,
    model_fingerprint,
    write_curated,
)
from heta_lens.evals.datasets import sequence as sequence_module
from heta_lens.hooks import ModelAdapter
from heta_lens.models import load_tokenizer

pytestmark = pytest.mark.bridge


def _smollm2_tokenizer() -> Any:
    """SmolLM2's tokenizer as ``load_hf`` saves it (re-read from the GGUF once if absent)."""
    return load_tokenizer("smollm2-135m")


def _tiny_bridge(tokenizer: Any, *, zero_unembed: bool = False) -> Any:
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        attn_implementation="eager",
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        hf: Any = LlamaForCausalLM(config).to(torch.float64).eval()
    if zero_unembed:  # every logit ties -> greedy always picks id 0 (<|endoftext|>)
        with torch.no_grad():
            hf.lm_head.weight.zero_()
    hf.config.architectures = ["LlamaForCausalLM"]
    return TransformerBridge.boot_transformers(
        "tiny-llama", hf_model=hf, tokenizer=tokenizer, device="cpu"
    )


@pytest.fixture(scope="module")
def tokenizer():
    return _smollm2_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer):
    return _tiny_bridge(tokenizer)


@pytest.fixture(scope="module")
def eos_model(tokenizer):
    return _tiny_bridge(tokenizer, zero_unembed=True)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HETA_LENS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def curated_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("curated") / "c.jsonl"
    return write_curated(path, build_curated(n=40))


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _answer_rank(model: Any, tokens: tuple[int, ...]) -> int:
    """Rank of the last token under a plain full forward (independent of last_log_probs)."""
    with torch.no_grad():
        logits = model(torch.tensor([tokens]))[0, -2].log_softmax(-1)
    return int((logits > logits[tokens[-1]]).sum())


def test_curated_regions_align_with_characters(model, tokenizer, curated_file):
    rows = {r["id"]: r for r in _rows(curated_file)}
    instances = load_curated(model, data_path=curated_file, top_k=len(tokenizer), progress=False)
    assert [i.uid for i in instances] == list(rows)  # everything ranks below d_vocab
    for inst in instances:
        row = rows[inst.uid]
        prompt = PROMPT_TEMPLATE.format(**{k: row[k] for k in ("narrative", "support", "question")})
        assert list(inst.tokens[:-1]) == model.to_tokens(prompt)[0].tolist()
        target_ids = model.to_tokens(prompt + " " + row["answer"])[0].tolist()
        assert inst.tokens[-1] == target_ids[len(inst.tokens) - 1]
        assert inst.targets == (len(inst.tokens) - 1,)

        def text(name: str, inst=inst) -> str:
            ids = [inst.tokens[p] for p in inst.regions[name]]
            return tokenizer.decode(ids, clean_up_tokenization_spaces=False)

        assert text("narrative").strip() == row["narrative"]
        assert text("sciq").strip() == row["support"]
        assert text("question").strip() == row["question"]
        # decoding each annotated span's tokens reproduces the annotated words
        support = set(inst.regions["support"])
        assert support <= set(inst.regions["sciq"])
        for a, b in row["support_spans"]:
            word = row["support"][a:b]
            assert word in text("support")
        decoded = [tokenizer.decode([t]) for t in inst.tokens]
        lengths = [len(d) for d in decoded[1:-1]]  # [1:] skips BOS; prefix sums = offsets
        ends = [sum(lengths[: k + 1]) for k in range(len(lengths))]
        starts = [e - n for e, n in zip(ends, lengths, strict=True)]
        s0 = len(row["narrative"]) + 2
        expected = {
            k + 1
            for k, (s, e) in enumerate(zip(starts, ends, strict=True))
            for a, b in row["support_spans"]
            if s < s0 + b and s0 + a < e
        }
        assert support == expected


def test_curated_top_k_filter_and_limit(model, curated_file):
    rows = _rows(curated_file)
    top_k = 20_000
    instances = load_curated(model, data_path=curated_file, top_k=top_k, progress=False)
    stats = curated_survival(model, data_path=curated_file, top_k=top_k, progress=False)
    full = load_curated(model, data_path=curated_file, top_k=10**6, progress=False)
    ranks = {i.uid: _answer_rank(model, i.tokens) for i in full}
    assert len(ranks) == len(rows)
    assert [i.uid for i in instances] == [r["id"] for r in rows if ranks[r["id"]] < top_k]
    assert all(i.meta["answer_rank"] == ranks[i.uid] for i in instances)
    assert 0 < stats.n_kept == len(instances) < stats.n_candidates == len(rows)
    first = load_curated(model, data_path=curated_file, top_k=top_k, limit=3, progress=False)
    assert first == instances[:3]
    argmax = [r["id"] for r in rows if ranks[r["id"]] == 0]
    if argmax:
        top1 = load_curated(model, data_path=curated_file, top_k=1, progress=False)
        assert [i.uid for i in top1] == argmax
    else:
        with pytest.raises(ValueError, match=r"0 of 40 curated rows survived"):
            load_curated(model, data_path=curated_file, top_k=1, progress=False)


def test_curated_bad_file_names_line(model, curated_file, tmp_path):
    lines = curated_file.read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([lines[0], lines[1][:-5]]) + "\n")
    with pytest.raises(ValueError, match=rf"{bad}:2: malformed JSON"):
        load_curated(model, data_path=bad, progress=False)
    with pytest.raises(FileNotFoundError, match="--data"):
        load_curated(model, data_path=tmp_path / "absent.jsonl", progress=False)


def _greedy_oracle(model: Any, prompt: str, n: int) -> list[int]:
    ids = model.to_tokens(prompt)[0]
    with torch.no_grad():
        for _ in range(n):
            ids = torch.cat([ids, model(ids[None])[0, -1].argmax()[None]])
    return ids.tolist()


def test_sequence_targets_and_cache(model, _private_cache, monkeypatch):
    instances = load_sequence(model, "wikitext", progress=False)
    assert len(instances) == 22
    first = instances[0]
    prompt = first.meta["prompt"]
    start = len(model.to_tokens(prompt)[0])
    assert prompt == (
        "Bowman Creek is a 26-mile (42 km) long tributary of the Susquehanna River in "
        "Luzerne County and Wyoming County"
    )
    assert list(first.tokens) == _greedy_oracle(model, prompt, 10)
    assert first.targets == (start + 1, start + 3, start + 5, start + 7, start + 9)
    assert first.uid == "wikitext-000" and first.dataset == "wikitext"
    assert len(list((_private_cache / "evals").glob("wikitext-*.jsonl"))) == 1

    def boom(*args, **kwargs):  # noqa: ARG001
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(sequence_module, "greedy_generate", boom)
    assert load_sequence(model, "wikitext", progress=False) == instances
    assert load_sequence(model, "wikitext", limit=4, progress=False) == instances[:4]


def test_sequence_tellmewhy_files(model):
    five = load_sequence(model, "tellmewhy", limit=2, n_generate=4, every=2, progress=False)
    assert [i.uid for i in five] == ["tellmewhy-000", "tellmewhy-001"]
    assert five[0].meta["prompt"].startswith("Everyone was in a math class.")
    start = five[0].meta["n_prompt_tokens"]
    assert five[0].targets == (start + 1, start + 3) and len(five[0].tokens) == start + 4
    alt = load_sequence(model, "tellmewhy", tellmewhy_file="tellmewhy2", limit=1, progress=False)
    assert alt[0].uid == "tellmewhy2-000" and alt[0].meta["prompt"].startswith("Jay took a trip")


def test_longra_zero_survivors_through_the_loader(eos_model, _private_cache):
    with pytest.raises(ValueError, match=r"0 of 573 LongRA candidates survived") as err:
        load_longra(eos_model, progress=False)
    assert "mispredicted with distractor" in str(err.value)
    assert not list((_private_cache / "evals").glob("longra-*"))  # nothing cached on error


def test_missing_data_dir_names_option(model, tmp_path):
    for call in (
        lambda: load_longra(model, data_dir=tmp_path / "nope"),
        lambda: load_sequence(model, "wikitext", data_dir=tmp_path / "nope"),
        lambda: load_curated(model, data_dir=tmp_path / "nope"),
    ):
        with pytest.raises(FileNotFoundError, match="--data-dir") as err:
            call()
        assert str(tmp_path / "nope") in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="longra_all_candidates.jsonl"):
        load_longra(model, data_dir=tmp_path / "empty")


def test_fingerprint_tracks_weights(model, eos_model, tokenizer):
    assert model_fingerprint(model) == model_fingerprint(model)
    assert model_fingerprint(eos_model) != model_fingerprint(model)
    assert ModelAdapter(model).d_vocab == len(tokenizer)
