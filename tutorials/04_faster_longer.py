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
# # 4. Going faster and longer: presets, windows and what they cost
#
# Full HETA computes eq. 3 exactly: one Hessian-vector product (HVP) per context token and
# probe, each a double backward through the whole model. That is the expensive part; the gate
# costs one forward and the information term about `0.4 × T` forwards. This notebook shows
# the cheaper estimators (presets), how they compare with full HETA, and windowed HETA for
# long inputs, with the measured cost table of `heta-lens bench`.

# %%
import time
import warnings
from pathlib import Path

import pandas as pd
import torch
from tqdm import TqdmWarning

warnings.filterwarnings("ignore", category=TqdmWarning)  # no ipywidgets: text progress bars

import heta_lens as H
from heta_lens.windows import window_spans

torch.manual_seed(0)
model = H.load_model("smollm2-135m", backend="bridge")

# %% [markdown]
# ## The presets
#
# Every preset is a plain `HetaConfig` (`H.preset(name, **overrides)`; on the command line
# `--preset NAME`). A preset chooses the curvature estimator — a typed value, `H.Exact`,
# `H.RowBlock`, `H.LowRank` or `H.LayerSampled`, each holding only the options that mean
# something for it — and, for `WIN`, the windows (`H.Window`):

# %%
pd.DataFrame(
    {
        name: {"curvature": config.curvature, "window": config.window}
        for name, config in H.PRESETS.items()
    }
).transpose()

# %% [markdown]
# - `full`: eq. 3 exactly, `(1/m) Σ_k ‖H_ii r_k‖₁`, m = 8 probes: `ctx·m` HVPs.
# - `row`: the appendix's row-block mass `‖Π_i H r_k‖₁` with probes over *all* tokens at once:
#   `m` HVPs in total, whatever the length. `fast` is `row` with m = 8, picked from the
#   benchmark.
# - `LS`: eq. 3 with respect to the residual stream entering layer L − 4, so each HVP only
#   goes through the last 4 layers.
# - `LR` / `LR-global`: randomised low-rank range finders (per token block, or one over the
#   whole Hessian).
# - `WIN`: windows of 128 tokens with 50% overlap (below).
#
# ## The measured cost table
#
# `heta-lens bench` (`make bench`, about 40 minutes on 2 cores) measures every preset on
# SmolLM2 in one process and writes `benchmarks/RESULTS.md`. Two of its tables, read from the
# file: the cost of each preset at 64 context tokens relative to Captum's leave-one-out
# occlusion, and the growth with context length.

# %%
RESULTS = Path("../benchmarks/RESULTS.md")


def markdown_table(path: Path, heading: str) -> pd.DataFrame:
    """The first markdown table after the line starting with ``heading``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows:
            break
    return pd.DataFrame(rows[2:], columns=rows[0])


markdown_table(RESULTS, "## 2. Cost relative")

# %%
scaling = markdown_table(RESULTS, "## 4. Scaling")
scaling[scaling.preset.isin(["full", "fast", "WIN"])].set_index(["preset", "T"])

# %% [markdown]
# Read it as: full HETA is about 17× the cost of occlusion at 64 tokens with 8 probes (the
# cost is linear in m); `fast` costs about what occlusion costs and agrees with full HETA at
# Spearman ρ ≈ 0.99 on 32–128-token inputs (section 5 of the file). Full HETA grows as
# about T², `fast` as about T^1.6; at 512 tokens `fast` takes minutes where full HETA would
# take about 24. `benchmarks/RESULTS.md` explains each number.
#
# ## A tiny version of the table, here and now
#
# The same comparison on one short prompt, on whatever machine runs this notebook
# (timings differ between machines and runs; the ratios are what matter). Full HETA runs with
# one probe here to stay quick, so it is itself a noisy reference.

# %%
text = "Alice put the keys in the blue box. Later, Bob moved the keys to the drawer. "
text += "Alice looked for the keys in the"
tokens = model.to_tokens(text)[0]
target = int(model(tokens[None])[0, -1].argmax())
tokens = torch.cat([tokens, torch.tensor([target])])
print(f"{len(tokens) - 1} context tokens, explaining {model.to_string(target)!r}")


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


runs = {
    "full (m=1)": H.preset("full", n_probes=1),
    "fast": H.preset("fast"),
    "LS": H.preset("LS", n_probes=1),
}
results, seconds = {}, {}
_, seconds["occlusion"] = timed(lambda: H.get_method("occlusion")(model, tokens))
for name, config in runs.items():
    results[name], seconds[name] = timed(lambda c=config: H.attribute(model, tokens, config=c))
reference = results["full (m=1)"].scores[1:]  # position 0 (the sink) is 0 for every preset
cost = pd.DataFrame(
    {
        "seconds": seconds,
        "× occlusion": {k: v / seconds["occlusion"] for k, v in seconds.items()},
        "Spearman ρ vs full": {
            k: pd.Series(r.scores[1:]).corr(pd.Series(reference), method="spearman")
            for k, r in results.items()
        },
    }
)
cost.round(2)

# %%
top = {name: [tok for _, tok, _ in r.top(3)] for name, r in results.items()}
print("top 3 tokens per preset:", top)

# %% [markdown]
# ## Long inputs: windows (HETA-WIN)
#
# With `window=H.Window(size=W)`, the context is covered by windows of W tokens that overlap
# by `overlap` (50% by default, as in the paper); every token's terms are averaged over
# the windows that contain it. Here with W = 12 on our short context:

# %%
ctx = len(tokens) - 1
print(f"{ctx} context tokens, windows:", window_spans(ctx, 12, 0.5))

# %% [markdown]
# There are two views (`H.Window(size=W, view=...)`), and the difference matters:
#
# - `"prefix"` (default): the model always sees the whole prefix, so the explained
#   prediction is the real one; S and I do not depend on the window, so the cost is that of
#   plain HETA. Windows only localise the normalisation of gate, curvature and information.
# - `"window"`: the model sees only the window (after the first token, the attention sink)
#   followed by the target, so each window explains a *truncated-context* prediction. HVPs
#   are W + 1 tokens long instead of ctx: this is the view that saves compute on long inputs
#   (`WIN` preset: W = 128; it saves about 25% at 256 tokens in the benchmark) at the price
#   of explaining something slightly different.
#
# With W ≥ ctx there is one window and both views equal plain HETA exactly (a unit test
# checks this).

# %%
windowed = H.preset("fast", window=H.Window(size=12))
prefix_view, seconds["WIN prefix"] = timed(lambda: H.attribute(model, tokens, config=windowed))
window_view, seconds["WIN window"] = timed(
    lambda: H.windowed_attribute(model, tokens, config=windowed, view="window")
)
fast = pd.Series(results["fast"].scores[1:])
for name, r in (("prefix", prefix_view), ("window", window_view)):
    rho = pd.Series(r.scores[1:]).corr(fast, method="spearman")
    print(f"{name:>6} view: {seconds['WIN ' + name]:5.1f} s, Spearman ρ vs plain fast {rho:.2f}")

# %% [markdown]
# The prefix view stays close to plain HETA: the model computation is the same and only the
# normalisation is per window. The window view can differ a lot, because every window
# explains a different, truncated-context prediction: tokens outside a window are invisible
# to it. On an input this short it is also *slower* (one small HETA run per window, each
# with its own fixed costs); it pays off once the context is several times W. Use it when
# full-length HVPs are unaffordable, with windows that hold the context a prediction needs
# (the paper uses W = 128).
#
# ## Other knobs
#
# - `n_probes` (m, on every curvature type; `config.with_probes(m)`): the cost of `full`,
#   `LS` and `LR` is linear in it; the estimate's noise falls as 1/√m. `fast` fixes m = 8
#   (its HVPs do not grow with the context).
# - `H.Hvp(memory_gb=4)` sizes the batched double-backward chunks; lower it on a small
#   machine. `H.Information(chunk=16)` does the same for the masked reruns.
# - `progress=True` on `attribute` shows progress bars for long runs.
# - The ablations (`HetaConfig.ablation(name)`) that switch off curvature or information skip
#   that computation entirely: `heta_kl_only` costs no HVP at all.
