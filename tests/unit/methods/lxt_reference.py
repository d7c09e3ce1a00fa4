"""lxt 2.1's own AttnLRP (``monkey_patch`` of transformers' Llama classes) as an oracle.

Run as a script, in its own process: lxt patches classes process-wide and irreversibly. Two
shims make lxt 2.1 run on transformers 5, without changing a rule:

1. ``lxt/efficient/__init__.py`` and ``lxt/efficient/models/__init__.py`` import every model
   patch, and the BERT one fails on transformers 5 (``find_pruneable_heads_and_indices`` /
   ``modeling_attn_mask_utils`` are gone); empty package modules stand in for those two
   ``__init__`` files, so ``lxt.efficient.models.llama`` (the Llama patch map) imports alone.
2. lxt's ``patch_attention`` replaces ``modeling_llama.ALL_ATTENTION_FUNCTIONS`` by a plain
   dict, on which transformers 5 calls ``get_interface``; the original registry is put back.
   Eager attention then runs ``modeling_llama.eager_attention_forward``, which lxt patched.

Relevance as in lxt's quickstart: ``(E * E.grad).sum(-1)`` after ``logits[0, -1, t].backward()``.

    python lxt_reference.py tiny SEED        # tests.unit: heta_lens.testing.tiny_llama_hf
    python lxt_reference.py smollm2          # acceptance: heta_lens.load_hf("smollm2-135m")

Prints JSON ``{"relevance": [...], "logit": float}`` for the token ids given on stdin (JSON list;
the last id is the explained token).
"""

import json
import sys
import types

import torch


def lxt_attnlrp(hf, tokens: torch.Tensor) -> tuple[torch.Tensor, float]:
    import lxt

    for name in ("lxt.efficient", "lxt.efficient.models"):
        package = types.ModuleType(name)
        package.__path__ = [lxt.__path__[0] + "/" + name.split(".", 1)[1].replace(".", "/")]
        sys.modules[name] = package  # shim 1
    import lxt.efficient.models.llama as lxt_llama
    from transformers.models.llama import modeling_llama

    registry = modeling_llama.ALL_ATTENTION_FUNCTIONS
    for target, patch in lxt_llama.attnLRP.items():
        if not patch(target):
            raise RuntimeError(f"lxt could not patch {target}")
    modeling_llama.ALL_ATTENTION_FUNCTIONS = registry  # shim 2
    for p in hf.parameters():
        p.requires_grad_(False)
    prefix, target = tokens[:-1], int(tokens[-1])
    embeds = hf.get_input_embeddings()(prefix[None]).detach().requires_grad_(True)
    logits = hf(inputs_embeds=embeds, use_cache=False).logits
    logits[0, -1, target].backward()
    assert embeds.grad is not None
    return (embeds * embeds.grad).sum(-1)[0].detach(), float(logits[0, -1, target].detach())


def main() -> None:
    tokens = torch.tensor(json.loads(sys.stdin.read()))
    if sys.argv[1] == "tiny":
        from heta_lens.testing import tiny_llama_hf

        hf = tiny_llama_hf(seed=int(sys.argv[2]))
    else:
        from heta_lens.models import load_hf

        hf, _ = load_hf("smollm2-135m")
    relevance, logit = lxt_attnlrp(hf, tokens)
    sys.stdout.write(json.dumps({"relevance": relevance.tolist(), "logit": logit}))


if __name__ == "__main__":
    main()
