# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2. HETA and a circuit: indirect-object identification in SmolLM2
#
# Circuit analysis asks which *model components* (here: attention heads) compute a behaviour;
# HETA asks which *input tokens* a prediction depends on, and on the way it computes a gate
# that says through which heads each token's information flows. This notebook puts the two
# side by side on the classic indirect-object-identification (IOI) task:
#
# 1. a small IOI prompt set on SmolLM2-135M, and how often the model gets it right;
# 2. TransformerLens activation patching of every head (`transformer_lens.patching`) on the
#    logit difference `logit(IO) − logit(S)`;
# 3. HETA explaining the *same* logit difference (a `Contrast` target), keeping its gate per
#    head (`gate_by_head`);
# 4. the head view of HETA against the patching effect of each head: rank correlation over
#    the 270 heads and the top heads of each, with where they agree and where they do not;
# 5. HETA's curvature interaction map of one prompt, and the word-level view.
#
# Everything runs on the embedded SmolLM2 through `TransformerBridge`, offline, in a few
# minutes on a 2-core CPU (most of it is the 270 patching runs).

# %%
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch
from scipy.stats import spearmanr
from tqdm import TqdmWarning

warnings.filterwarnings("ignore", category=TqdmWarning)  # no ipywidgets: text progress bars

from transformer_lens import patching

import heta_lens as H
from heta_lens import viz

plt.rcParams.update({"figure.dpi": 72, "font.size": 9})
torch.manual_seed(0)  # HETA's probes come from config.seed; this only pins anything else
OUT = Path("out")
OUT.mkdir(exist_ok=True)

model = H.load_model("smollm2-135m", backend="bridge")
n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads

# %% [markdown]
# ## The prompt set
#
# In "When Mary and John went to the store, John gave a drink to", the answer is the
# *indirect object* (IO) " Mary"; " John" is the *subject* (S), named twice (S1, then S2).
# We build 16 prompts from 4 templates and 8 name pairs, each pair in both orders (IO named
# first, "ABBA", or second, "BABA"). Every name is one token with its leading space in
# SmolLM2's tokenizer, and every template has 14 tokens, so all prompts have the same
# length and the names sit at the same positions (after the BOS token at position 0: the
# first name at 2, the second at 4, S2 at 10, the last token " to" at 14). That lets one
# batch hold them all.
#
# The *corrupted* prompt replaces S2 by the IO name ("..., Mary gave a drink to"): the
# repeated name is now the other one, so the right answer flips. Clean and corrupted prompts
# differ in that one token.

# %%
TEMPLATES = [
    "When {A} and {B} went to the store, {S} gave a drink to",
    "After {A} and {B} went to the park, {S} handed a ball to",
    "When {A} and {B} arrived at the office, {S} gave a letter to",
    "While {A} and {B} were at the house, {S} gave a book to",
]
PAIRS = [  # (IO, S)
    ("Mary", "John"),
    ("Sarah", "David"),
    ("Alice", "Tom"),
    ("Paul", "Anna"),
    ("James", "Peter"),
    ("Jack", "Rose"),
    ("Mark", "Sam"),
    ("George", "Henry"),
]
rows = []
for k, (io, s) in enumerate(PAIRS):
    template = TEMPLATES[k % len(TEMPLATES)]
    for order, (a, b) in (("ABBA", (io, s)), ("BABA", (s, io))):
        rows.append(
            {
                "clean": template.format(A=a, B=b, S=s),
                "corrupt": template.format(A=a, B=b, S=io),
                "io": model.to_single_token(f" {io}"),
                "s": model.to_single_token(f" {s}"),
                "order": order,
            }
        )
prompts = pd.DataFrame(rows)
clean_tokens = model.to_tokens(list(prompts["clean"]))
corrupt_tokens = model.to_tokens(list(prompts["corrupt"]))
assert clean_tokens.shape == corrupt_tokens.shape == (16, 15)
assert int((clean_tokens != corrupt_tokens).sum()) == 16  # one token per prompt: S2
labels = model.to_str_tokens(clean_tokens[0])
S2, END = 10, 14
IO_POS = torch.tensor([2 if order == "ABBA" else 4 for order in prompts["order"]])
S1_POS = 6 - IO_POS
print(list(enumerate(labels)))

# %% [markdown]
# The metric of the circuit tools is the logit difference `logit(IO) − logit(S)` at the last
# position, one value per prompt:

# %%
IO_IDS, S_IDS = torch.tensor(prompts["io"]), torch.tensor(prompts["s"])


def logit_diff(logits: torch.Tensor) -> torch.Tensor:
    """logit(IO) − logit(S) at the last position, ``[batch]``."""
    last = logits[:, -1]
    return last.gather(1, IO_IDS[:, None])[:, 0] - last.gather(1, S_IDS[:, None])[:, 0]


with torch.no_grad():
    clean_logits, clean_cache = model.run_with_cache(clean_tokens)
    corrupt_logits = model(corrupt_tokens)
prompts["clean LD"] = logit_diff(clean_logits).tolist()
prompts["corrupt LD"] = logit_diff(corrupt_logits).tolist()
n_positive = int((prompts["clean LD"] > 0).sum())
print(f"logit difference > 0 on {n_positive} of {len(prompts)} prompts")
CLEAN_LD, CORRUPT_LD = prompts["clean LD"].mean(), prompts["corrupt LD"].mean()
print(f"mean logit difference: clean {CLEAN_LD:.2f}, corrupted {CORRUPT_LD:.2f}")
prompts[["clean", "order", "clean LD", "corrupt LD"]].round(2)

# %% [markdown]
# ## Activation patching, one head at a time
#
# TransformerLens's `patching.get_act_patch_attn_head_out_all_pos` runs the *corrupted*
# batch once per head and replaces that head's output `z` (`blocks.L.attn.hook_z`, all
# positions) by its value in the *clean* run: clean → corrupted ("denoising"). The metric is
# the fraction of the mean logit difference that the patch restores,
# `(LD_patched − LD_corrupt) / (LD_clean − LD_corrupt)` with each LD the mean over the 16
# prompts: 1 = the head alone restores the clean behaviour, 0 = no effect, negative = it
# pushes the other way. It works on a `TransformerBridge` as on a `HookedTransformer`.


# %%
def recovered(logits: torch.Tensor) -> torch.Tensor:
    """Fraction of the mean logit difference restored (0 = corrupted, 1 = clean)."""
    return (logit_diff(logits).mean() - CORRUPT_LD) / (CLEAN_LD - CORRUPT_LD)


start = time.perf_counter()
with torch.no_grad():
    patch_effect = patching.get_act_patch_attn_head_out_all_pos(
        model, corrupt_tokens, clean_cache, recovered
    )
print(f"patching: {n_layers * n_heads} heads in {time.perf_counter() - start:.0f} s")


def name(index: int) -> str:
    return f"L{index // n_heads}H{index % n_heads}"


effect = patch_effect.flatten()
ranked = effect.abs().argsort(descending=True)
print("largest |effect|:", [(name(i), round(float(effect[i]), 3)) for i in ranked[:8]])

# %% [markdown]
# An independent check of one cell: patch the top head by hand with `run_with_hooks` (its
# slice of `z` in every prompt and position) and compare with TransformerLens's value.

# %%
top_layer, top_head = divmod(int(ranked[0]), n_heads)


def patch_one_head(z: torch.Tensor, hook) -> torch.Tensor:
    z[:, :, top_head] = clean_cache[hook.name][:, :, top_head]
    return z


with torch.no_grad():
    by_hand = recovered(
        model.run_with_hooks(
            corrupt_tokens, fwd_hooks=[(f"blocks.{top_layer}.attn.hook_z", patch_one_head)]
        )
    )
same = torch.allclose(by_hand, patch_effect[top_layer, top_head], atol=1e-5)
print(f"{name(int(ranked[0]))} by hand == transformer_lens.patching: {same}")

# %% [markdown]
# ## HETA on the same logit difference
#
# `H.Contrast(answer, foil)` makes HETA explain `f = logit(answer) − logit(foil)` at the last
# position: the curvature is the Hessian of `f`, the information term the KL of the two-way
# distribution `softmax([logit_IO, logit_S])`, and the gate is read from the last position.
# Every method runs through the registry; `.with_preset("fast")` picks the row-block
# curvature estimator (8 probes) and `.keeping(gate_by_head=True)` keeps each head's term of
# the gate, `gate_by_head[layer, head, token]` (summing over heads gives `gate`).

# %%
heta = H.get_method("heta").with_preset("fast").keeping(gate_by_head=True)
start = time.perf_counter()
results = [
    heta(model, clean_tokens[k], target=H.Contrast(int(IO_IDS[k]), int(S_IDS[k])))
    for k in range(len(prompts))
]
print(f"HETA (fast, gate by head): {len(results)} prompts in {time.perf_counter() - start:.0f} s")
r0 = results[0]
sums = all(torch.allclose(r.gate_by_head.sum((0, 1)), r.gate, atol=1e-6) for r in results)
print("gate_by_head sums to gate:", sums)
as_token = H.semantic_gate(model, torch.cat([clean_tokens[0], IO_IDS[:1]]), target=END + 1)
print("same gate as for the token target ' Mary':", torch.allclose(as_token, r0.gate, atol=1e-6))
print(r0.target_description, f"= {r0.target_value:.2f}")
print("top 4 tokens:", [(pos, tok, round(score, 3)) for pos, tok, score in r0.top(4)])

# %% [markdown]
# Over the set, which name does HETA score highest? And which tokens does it put first?

# %%
io_first = sum(
    float(r.scores[IO_POS[k]]) > max(float(r.scores[S1_POS[k]]), float(r.scores[S2]))
    for k, r in enumerate(results)
)
print(f"HETA scores IO above both S tokens on {io_first} of {len(results)} prompts")
mean_scores = torch.stack([r.scores for r in results]).mean(0)
print("mean score by position (first prompt's tokens):")
print(" ".join(f"{labels[p]!r}:{float(mean_scores[p]):.3f}" for p in range(1, END + 1)))

# %% [markdown]
# ## HETA's head view against the patching effect
#
# Patching gives one number per head. HETA's `gate_by_head` gives one number per head *and
# token*, so we have to say which token's column to compare. The corrupted prompt changes
# only S2, so patching a head can only matter through what the head reads from S2 onwards;
# the HETA counterpart is **the S2 token's gate by head**: how much of S2's information
# reaches the last position through head (L, H). We take each head's share of S2's gate
# (`gate_by_head[:, :, S2] / gate[S2]`) and average it over the prompts. For comparison we
# also report two other readings: the three name tokens together, and all tokens except the
# BOS sink (which holds most of the raw gate mass and no content).
#
# Patching effects are signed (a head can push against the answer); HETA's gate is a
# non-negative mass. We rank heads by |effect| and by HETA mass, and report Spearman's ρ over
# the 270 heads (and the signed effect too), and the overlap of the top 10 of each.


# %%
def share(columns: list[torch.Tensor]) -> torch.Tensor:
    """Each head's share of the summed gate of some tokens, averaged over prompts."""
    per_prompt = [c / c.sum() for c in columns]
    return torch.stack(per_prompt).mean(0).flatten()


views = {
    "S2 token": share([r.gate_by_head[:, :, S2] for r in results]),
    "names (IO, S1, S2)": share([r.gate_by_head[:, :, [2, 4, S2]].sum(-1) for r in results]),
    "all but BOS": share([r.gate_by_head[:, :, 1:].sum(-1) for r in results]),
}
top_patch = set(ranked[:10].tolist())
summary = []
for view, mass in views.items():
    top_heta = set(mass.argsort(descending=True)[:10].tolist())
    summary.append(
        {
            "HETA view": view,
            "ρ vs |effect|": spearmanr(mass, effect.abs()).statistic,
            "ρ vs effect": spearmanr(mass, effect).statistic,
            "top-10 overlap": len(top_patch & top_heta),
            "shared heads": " ".join(name(i) for i in sorted(top_patch & top_heta)),
        }
    )
summary = pd.DataFrame(summary)
print(summary.round(2).to_string(index=False))

# %%
heta_s2 = views["S2 token"]
top_heta = heta_s2.argsort(descending=True)[:10]
pd.DataFrame(
    {
        "patching top 10": [name(i) for i in ranked[:10]],
        "effect": [float(effect[i]) for i in ranked[:10]],
        "its HETA rank": [int((heta_s2 > heta_s2[i]).sum()) + 1 for i in ranked[:10]],
        "HETA (S2) top 10": [name(i) for i in top_heta],
        "S2 share": [float(heta_s2[i]) for i in top_heta],
        "its patching rank": [int((effect.abs() > effect[i].abs()).sum()) + 1 for i in top_heta],
    }
).round(3)

# %%
fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
image = axes[0].imshow(patch_effect.T, cmap="RdBu", vmin=-0.5, vmax=0.5, aspect="auto")
axes[0].set(xlabel="layer", ylabel="head", title="patching: fraction of LD restored")
fig.colorbar(image, ax=axes[0], shrink=0.8)
image = axes[1].imshow(heta_s2.view(n_layers, n_heads).T, cmap="Reds", aspect="auto")
axes[1].set(xlabel="layer", ylabel="head", title="HETA: share of S2's gate")
fig.colorbar(image, ax=axes[1], shrink=0.8)
axes[2].scatter(heta_s2, effect, s=8)
for i in ranked[:5].tolist():
    axes[2].annotate(name(i), (float(heta_s2[i]), float(effect[i])), fontsize=7)
axes[2].set(xlabel="HETA share of S2's gate", ylabel="patching effect", title="per head")
axes[2].set_xscale("log")
fig.tight_layout()
plt.show()

# %% [markdown]
# **What the numbers say.** SmolLM2 does the task: the logit difference is positive on all
# 16 prompts (mean 4.3; −4.2 on the corrupted prompts), and HETA's token scores put the IO
# name above both subject tokens on 14 of the 16.
#
# *Patching* finds a small set of heads: L23H3 alone restores about 56% of the logit
# difference, then L20H0 (38%), L29H1, L17H4, and two heads that push the other way (L29H0,
# L24H4: negative effects, in the style of the "negative name movers" of the GPT-2 IOI
# circuit).
#
# *Where HETA's head view agrees.* The ranks are positively related (ρ ≈ 0.34 between the S2
# token's gate by head and |effect|; about the same for the other two readings), and
# patching's top head L23H3 is in HETA's top 10 (7th). Both say the answer is decided in the
# upper layers, at the last position.
#
# *Where it does not.* The overlap of the top 10s is 1 head (2 for the "all but BOS"
# reading), and the disagreements are systematic, not noise:
#
# - HETA's top heads (L29H6, L25H2, L28H0, L29H7, ...) are late heads that read S2 directly
#   from the last position. The gate counts how much of S2's value vectors flows through a
#   head to the last position, weighted by their norm; it does not ask whether what the head
#   writes changes `logit(IO) − logit(S)`. Most of these heads have patching effects near 0.
# - The mid-layer heads that patching needs (L17H4, L20H0, L19H2: HETA ranks 178, 44, 65)
#   get almost none of S2's gate: in the first prompt (table further down) S2's gate is 0.0%
#   in each of layers 0–17 and under 1% in each of layers 18–22. These heads write into the
#   residual stream at S2 and the last position, and later heads carry that on; the rollout
#   gate credits the heads where the flow reaches the last position, not the ones that
#   computed what it carries.
# - The gate is a non-negative mass, so it cannot tell a head that pushes for the answer
#   from one that pushes against it (L29H0 is in the "all but BOS" top 10 of both, with a
#   negative effect). The signed correlation is weaker (ρ ≈ 0.13).
# - The gate does not depend on the contrast: with `Contrast(IO, S)` or with a plain token
#   target at the same position it is the same (checked above). The contrast changes HETA's
#   *scores* (the curvature and information are those of the logit difference), not its head
#   view.
#
# So HETA's head view is a map of *where the information of a token travels*, and patching a
# map of *which heads' outputs the behaviour needs under this counterfactual*; they overlap
# in the last layers and part ways below them.

# %% [markdown]
# ## One prompt up close: interactions, heads, words
#
# HETA's curvature term has a pairwise form: with exact curvature, `Exact(interactions=True)`
# keeps the map `X[i, j] = (1/m) Σ_k ‖Π_i H Π_j r_{k,j}‖₁` of how strongly the Hessian of
# `f` couples tokens i and j (its diagonal is the curvature S). It needs the exact estimator
# (`ctx·m` HVPs), so we use the registry's full HETA with only 2 probes on the first prompt.

# %%
exact = H.get_method("heta").with_probes(2).keeping(gate_by_head=True, interactions=True)
start = time.perf_counter()
one = exact(model, clean_tokens[0], target=H.Contrast(" Mary", " John"))
print(f"exact HETA with interactions, 2 probes: {time.perf_counter() - start:.0f} s")
X = one.interactions
print("diagonal == curvature:", torch.allclose(X.diagonal(), one.curvature))
off = X[1:, 1:].clone().fill_diagonal_(0)  # leave out BOS and the diagonal
pairs = torch.stack(torch.unravel_index(off.flatten().argsort(descending=True), off.shape), 1)
strongest = [
    (f"{i + 1}:{labels[i + 1]}", f"{j + 1}:{labels[j + 1]}") for i, j in pairs[:6].tolist()
]
print("strongest couplings (row, probed):", strongest)

# %%
fig, ax = plt.subplots(figsize=(5, 4.2))
image = ax.imshow(off, cmap="Reds", aspect="auto")
ax.set_xticks(range(END), labels[1 : END + 1], rotation=60)
ax.set_yticks(range(END), labels[1 : END + 1])
ax.set(xlabel="probed token j", ylabel="token i", title="interactions X[i, j], diagonal left out")
fig.colorbar(image, ax=ax, shrink=0.8)
plt.show()

# %% [markdown]
# The largest cross-token terms couple the names with each other and with the first token
# "When" (the rows are the token whose curvature block is read, the columns the probed
# token): the second-order effect of the logit difference sits in how the names combine,
# which a per-token score (the diagonal) cannot show.
#
# The same result's head view for S2 (the table `viz.format_heads` prints; the HTML page
# shows it as a layer × head heatmap), then the scores summed over words:
# `result.aggregate("word", tokenizer=...)` groups tokens into words with the tokenizer's
# offsets (here "store," is one word of two tokens; BOS is a group of its own).

# %%
print(viz.format_heads(one, position=S2, top=5))
words = one.aggregate("word", tokenizer=model.tokenizer)
print("top words:", [(text, round(score, 3)) for _, text, score in words.top(4)])
page = viz.save_html(
    one, OUT / "ioi.html", heads=S2, interactions=True, aggregate="word", tokenizer=model.tokenizer
)
print(f"wrote {page} ({page.stat().st_size / 1024:.0f} KiB)")

# %% [markdown]
# ## What to take away
#
# - On this IOI set HETA (with `Contrast(IO, S)`) attributes the logit difference to the IO
#   name first, then the last position and the subject: the token view matches the task.
# - Its gate by head and per-head activation patching agree on the upper layers and on the
#   top patching head (L23H3), with a moderate rank correlation over all 270 heads
#   (ρ ≈ 0.34) and little overlap of the top 10s (1 of 10 for the S2 view).
# - They disagree, for stated reasons, on the mid-layer heads patching needs (the gate gives
#   them almost nothing) and on late heads that move S2's information without changing the
#   logit difference (the gate ranks them first). Use the gate to see which heads a token's
#   information passes through; use patching (or another causal test) before calling a head
#   part of the circuit.
# - Cost on 2 CPU cores: the 270 patching runs take about 2 minutes; HETA with the `fast`
#   preset and the gate by head takes a couple of seconds per prompt, and the per-head gate
#   costs no extra forward pass.
