import pytest
import torch

import heta_lens as H
from heta_lens.testing import tiny_bridge
from tests.conftest import make_model, model_params

FUNCTIONS = [H.semantic_gate, H.curvature_sensitivity, H.information_gain, H.attribute]


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.__name__)
def test_bad_inputs_give_clear_errors(model, fn):
    n_ctx = model.cfg.n_ctx
    cases = [
        (torch.tensor([], dtype=torch.long), None, ValueError, "empty"),
        (torch.tensor([1, 2, 3]), 0, ValueError, "no context"),
        (torch.tensor([1, 2, 3]), 3, ValueError, "out of range"),
        (torch.tensor([1, 2, 3]), -4, ValueError, "out of range"),
        (torch.ones(n_ctx + 1, dtype=torch.long), None, ValueError, "n_ctx"),
        (torch.tensor([[1, 2, 3], [4, 5, 6]]), None, ValueError, "batch size 2"),
        (torch.tensor([1.0, 2.0, 3.0]), None, TypeError, "integer"),
        (torch.tensor([1, 2, 999]), None, ValueError, "d_vocab"),
        ([1, 2.5], None, TypeError, "ints"),
    ]
    for tokens, target, error, message in cases:
        with pytest.raises(error, match=message):
            fn(model, tokens, target=target)


def test_accepted_token_forms_agree(model):
    ids = [1, 5, 7, 3]
    reference = H.semantic_gate(model, torch.tensor(ids))
    for form in (torch.tensor([ids]), ids, torch.tensor(ids, dtype=torch.int32)):
        assert torch.equal(H.semantic_gate(model, form), reference)
    assert torch.equal(H.semantic_gate(model, torch.tensor(ids), target=-1), reference)


def test_unsupported_model_type_is_a_type_error():
    with pytest.raises(TypeError, match="HookedTransformer and TransformerBridge"):
        H.semantic_gate(torch.nn.Linear(2, 2), torch.tensor([1, 2]))


@pytest.mark.parametrize("model_id", model_params(["hooked-ln"]))
def test_string_without_tokenizer_is_rejected(model_id):
    with pytest.raises(ValueError, match="no tokenizer"):
        H.semantic_gate(make_model(model_id), "hello world")


@pytest.mark.bridge
def test_overlong_string_is_rejected_not_truncated():
    bridge = tiny_bridge()
    with pytest.raises(ValueError, match="n_ctx=16"):
        H.attribute(bridge, " ".join(["w5"] * 20))


@pytest.mark.bridge
def test_empty_string_prompt_is_rejected():
    with pytest.raises(ValueError, match="empty prompt"):
        H.attribute(tiny_bridge(), "")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"beta": -1.0},
        {"gate_mode": "x"},
        {"normalization": "z"},
        {"sink": "drop"},
        {"use_gate": False, "use_curvature": False, "use_information": False},
    ],
)
def test_config_validation(kwargs):
    with pytest.raises(ValueError):
        H.HetaConfig(**kwargs)
    with pytest.raises(ValueError):
        H.Exact(n_probes=0)


def test_tiny_tokenizer_reads_every_word_whole():
    """Special tokens (w0, w1, w2) must not match inside longer words such as w13."""
    from heta_lens.testing import tiny_tokenizer

    tok = tiny_tokenizer()
    assert tok(" w13 w17 w1 w20 w2")["input_ids"] == [13, 17, 1, 20, 2]
