"""AttnLRP on the real SmolLM2-135M (a Llama): the same relevances as lxt's own monkey patch,
and how far they are from conserving the explained logit on one prompt."""

import pytest
import torch

import heta_lens as H
from tests.unit.methods.test_attnlrp import lxt_oracle

pytestmark = [pytest.mark.slow, pytest.mark.bridge]

PROMPT = "The capital of France is Paris. The capital of Germany is Berlin"


def test_attnlrp_on_smollm2_is_lxts_and_keeps_38_percent_of_the_logit(smollm2):
    tokens = smollm2.to_tokens(PROMPT)[0]
    result = H.get_method("attnlrp")(smollm2, tokens)  # the last token, " Berlin"
    assert result.signed and result.scores.shape == (tokens.numel() - 1,)
    theirs, logit = lxt_oracle(tokens, "smollm2")
    # float32 model, same operations: measured max |Δ| = 0 (largest |R| 2.11)
    torch.testing.assert_close(result.scores.double(), theirs, rtol=0, atol=1e-5)
    with torch.no_grad():
        bridge_logit = float(smollm2(tokens[:-1][None], logits_to_keep=1)[0, -1, int(tokens[-1])])
    assert bridge_logit == pytest.approx(logit, rel=0, abs=1e-4)  # measured |Δ| 2e-6
    # Not conservative here: Σ R = 6.525 of the logit 16.992 (ratio 0.384, measured); the
    # rest goes to the softmax rule's bias term (AttnLRP Sec. 3.3), in lxt's own code too.
    ratio = float(result.scores.sum()) / logit
    assert ratio == pytest.approx(0.384, abs=0.001)
