import pytest
import torch

import heta_lens as H
from tests.unit import oracles


@pytest.mark.parametrize("mask", ["zero", "mean", "token:17"])
def test_information_matches_explicit_reruns(model, tokens, mask):
    target = 6
    prefix = tokens[:target]
    x = oracles.embeddings(model, prefix)
    if mask == "zero":
        row = torch.zeros_like(x[0])
    elif mask == "mean":
        row = model.embed(torch.arange(model.cfg.d_vocab)[None])[0].mean(0).detach()
    else:
        row = oracles.embeddings(model, torch.tensor([17]))[0]
    expected = []
    for i in range(target):
        masked = x.clone()
        masked[i] = row
        expected.append(oracles.explicit_kl(model, prefix, masked))
    got = H.information_gain(model, tokens, target=target, mask=mask, chunk_size=4)
    torch.testing.assert_close(got, torch.tensor(expected, dtype=got.dtype), rtol=1e-9, atol=1e-13)


def test_token_mask_equals_replacing_the_token_id(model, tokens):
    target = 5
    got = H.information_gain(model, tokens, target=target, mask="token:17")
    with torch.no_grad():
        orig = model(tokens[None, :target])[0, -1].log_softmax(-1)
        for i in range(target):
            ids = tokens[:target].clone()
            ids[i] = 17
            masked = model(ids[None])[0, -1].log_softmax(-1)
            kl = torch.nn.functional.kl_div(masked, orig, log_target=True, reduction="sum")
            assert float(got[i]) == pytest.approx(float(kl), rel=1e-9, abs=1e-13)


def test_identity_mask_gives_exactly_zero_and_kl_is_nonnegative(model, tokens):
    identity = H.information_gain(model, tokens, mask=lambda emb, i: emb[i])
    assert torch.equal(identity, torch.zeros_like(identity))
    assert bool((H.information_gain(model, tokens) >= 0).all())


def test_chunking_does_not_change_information(model, tokens):
    a = H.information_gain(model, tokens, chunk_size=1)
    b = H.information_gain(model, tokens, chunk_size=100)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)


def test_information_ignores_tokens_after_target(model, tokens):
    changed = tokens.clone()
    changed[5:] = 2
    assert torch.equal(
        H.information_gain(model, tokens, target=4), H.information_gain(model, changed, target=4)
    )


@pytest.mark.parametrize("mask", ["blank", "token:x", "token:99999"])
def test_bad_mask_scheme_rejected(model, tokens, mask):
    with pytest.raises(ValueError, match="mask"):
        H.information_gain(model, tokens, mask=mask)
