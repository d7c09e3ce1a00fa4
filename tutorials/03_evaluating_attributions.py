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
# # 3. Evaluating attributions: is HETA more faithful here?
#
# An attribution is a claim about the model ("these tokens mattered"). This notebook tests
# that claim the way the HETA paper and ReAGent do, on instances of the curated
# NarrativeQA ⊕ SciQ set, for HETA and three baselines:
#
# - **Soft-NS / Soft-NC** (ReAGent): keep each token's embedding dimensions with probability
#   equal to its normalised attribution (sufficiency), or one minus it (comprehensiveness),
#   and measure how far the next-token distribution moves (Hellinger distance), normalised by
#   the all-masked input. Reported as `ln(mean method / mean random)`: 0 = no better than a
#   random attribution.
# - **DSA**: attribution mass on the annotated supporting-evidence tokens minus the mass on
#   the distracting narrative, in [−1, 1].
# - **Deletion curves** (AOPC): remove the top-k tokens (embedding set to 0) for growing k and
#   watch p(answer) fall; a faithful ranking makes it fall early.
#
# It runs offline in one to two minutes: short instances, few mask draws. The evaluation is one
# library call, `run_suite`, the same function `heta-lens eval` runs (its flags are the fields
# of `SuiteSettings`); the stored results of the full evaluation are read at the end.

# %%
import math
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch
from tqdm import TqdmWarning

warnings.filterwarnings("ignore", category=TqdmWarning)  # no ipywidgets: text progress bars

import heta_lens as H
from heta_lens.evals import Report, SuiteSettings, read_run, run_suite
from heta_lens.evals.datasets import default_curated_path, load_curated, read_curated, write_curated
from heta_lens.evals.datasets.curated_build import split_sentences
from heta_lens.evals.metrics import dsa

plt.rcParams.update({"figure.dpi": 72, "font.size": 9})
torch.manual_seed(0)
OUT = Path("out")
OUT.mkdir(exist_ok=True)
model = H.load_model("smollm2-135m", backend="bridge")

# %% [markdown]
# ## A few curated instances
#
# Each curated row is a narrative segment (a distractor), a SciQ support passage holding the
# answer, and the SciQ question; the explained token is the first token of the answer after
# `Answer:`. `support_spans` mark the supporting evidence (answer occurrences and the
# question's content words in the support). The default set of 2,400 rows is built once (about
# 5 s) from the SciQ and NarrativeQA files shipped with the package (or `$HETA_LENS_DATA`;
# `heta_lens.models.default_data_dir()`), and cached;
# `docs/curated_schema.md` has the schema, and `load_curated(model, data_path=...)` reads any
# file that follows it.
#
# The real instances average 124 tokens. To keep this notebook short to run we cut each
# narrative to its first sentence and keep rows whose texts are short, write them in the same
# schema, and let `load_curated` keep the first two the model can answer (answer token in its
# top 10, as in the full evaluation).

# %%
rows = read_curated(default_curated_path())
short = []
for row in rows:
    narrative = split_sentences(row["narrative"])[0]
    if len(narrative) + len(row["support"]) + len(row["question"]) < 200:
        short.append({**row, "narrative": narrative})
write_curated(OUT / "curated_short.jsonl", short[:40])
instances = load_curated(model, data_path=OUT / "curated_short.jsonl", limit=2, progress=False)
print(f"{len(rows)} rows, {len(short)} short ones; kept {len(instances)}")
for instance in instances:
    print(f"\n{instance.uid}: {len(instance.tokens)} tokens, answer {instance.meta['answer']!r}")
    print(instance.text)

# %% [markdown]
# An instance carries its token ids, the explained position and the token regions the
# alignment metrics use:

# %%
first = instances[0]
strings = model.to_str_tokens(torch.tensor(first.tokens))
for region in ("narrative", "support", "question"):
    positions = first.regions[region]
    print(f"{region:>9}: {len(positions):2d} tokens, e.g. {[strings[p] for p in positions[:6]]}")

# %% [markdown]
# ## One method, one metric
#
# Every method comes from the registry with the same signature
# `method(model, tokens, target=T, config=...)`, and every metric is a plain function of the
# model, the tokens, the target and one score vector. HETA with the `fast` preset (the default
# of `heta-lens eval`) on the first instance, and its DSA:

# %%
tokens, target = torch.tensor(first.tokens), first.targets[0]
result = H.get_method("heta")(model, tokens, target=target, config=H.preset("fast"))
support = torch.tensor(first.regions["support"])
narrative = torch.tensor(first.regions["narrative"])
by_hand = dsa(result.scores.double(), support=support, narrative=narrative)
print(f"DSA of HETA on {first.uid}: {by_hand:.4f}")

# %% [markdown]
# ## Evaluate four methods and a random baseline
#
# `run_suite` does this for every instance, method and metric: it loads the dataset for the
# model (our short file, through `data`), runs each method, scores it with every metric of
# the run (Soft-NS/NC, hard top-k KL, AOPC and, where a support region exists, DSA and F1),
# and adds ReAGent's random attribution, `softmax(u)`, `u ~ U(0, 1)`, as the baseline the
# Soft ratios are taken against. Each row is appended to `out/run/rows.jsonl` as soon as it is
# computed, so an interrupted run resumes, and the summary goes to `out/run/summary.md`. Soft
# mask draws come from a generator seeded per (instance, target, method), so numbers do not
# depend on the order things run in. We use 2 mask draws (ReAGent: 1, the default: 4).
#
# The same run from a shell: `heta-lens eval curated --data out/curated_short.jsonl --limit 2
# --methods heta,occlusion,input_x_gradient,attention_rollout --n-draws 2 --out out/run
# --no-plots`.

# %%
settings = SuiteSettings(
    dataset="curated",
    data=OUT / "curated_short.jsonl",
    limit=2,
    methods=("heta", "occlusion", "input_x_gradient", "attention_rollout"),
    n_draws=2,
    out=OUT / "run",
    plots=False,
)
report = run_suite(settings, model=model, progress=False)
row = next(r for r in report.rows if r["uid"] == first.uid and r["method"] == "heta")
print(
    f"{len(report.rows)} rows; DSA of HETA on {first.uid} in its row: {row['metrics']['dsa']:.4f}"
)
table = pd.DataFrame(
    [{"instance": r["uid"], "method": r["method"], **r["metrics"]} for r in report.rows]
)
table[["instance", "method", "soft_ns", "soft_nc", "dsa", "aopc_deletion"]].round(3)

# %% [markdown]
# The report holds the rows, the per-method summaries and the text `heta-lens eval` prints.
# ReAGent reports Soft-NS/NC relative to the random attribution, as the log of the ratio of
# means over instances, here with a 95% bootstrap interval over instances. With two instances
# this is an illustration, not evidence:


# %%
def intervals(report: Report) -> pd.DataFrame:
    """Method × metric: ``mean [low, high]`` of a report's summaries."""
    cells = {
        s.method: {k: f"{v.mean:.3f} [{v.low:.3f}, {v.high:.3f}]" for k, v in s.values.items()}
        for s in report.summaries
    }
    return pd.DataFrame(cells).T[["soft_ns", "soft_nc", "dsa", "aopc_deletion"]]


print(report.header.strip())
intervals(report)

# %% [markdown]
# ## Deletion curves
#
# p(answer) as a growing fraction of the context is removed (highest scores first), per
# method, for each instance, from the rows' stored curves. The first point (0% removed) is the
# model's own probability.

# %%
fractions = report.settings.aopc_fractions
fig, axes = plt.subplots(1, len(report.instances), figsize=(8, 2.6), sharey=False)
for ax, instance in zip(axes, report.instances, strict=True):
    p_orig = math.exp(instance.meta["answer_log_prob"])
    for r in report.rows:
        if r["uid"] == instance.uid:
            deletion = r["curves"]["deletion"]
            ax.plot((0, *fractions), (p_orig, *deletion), marker=".", label=r["method"])
    ax.set(title=f"{instance.uid} ({instance.meta['answer']})", xlabel="fraction removed")
axes[0].set_ylabel("p(answer)")
axes[-1].legend(fontsize=7)
plt.show()

# %% [markdown]
# On this 135M-parameter model, removing the top fifth of the context by almost any
# ranking drives p(answer) to about 0, so deletion curves (and their AOPC) hardly separate
# the methods: a ceiling effect of removing tokens by zeroing their embeddings. The soft
# metrics, which perturb only part of each token's embedding, discriminate better.
#
# ## The same metrics at scale
#
# `heta-lens eval curated` runs all of this on the full-length instances, with bootstrap
# intervals over instances, and stores one JSON line per (instance, method) with the scores
# and the per-step curves; it resumes after interruptions. The repository ships the rows of
# that run (`evals/runs/curated-smollm2-135m`, discussed in `evals/RESULTS.md`); `read_run`
# reads them back as the same kind of report, summarising the instances every method
# completed (what `scripts/eval_table.py` prints), without running the model:

# %%
stored = read_run("../evals/runs/curated-smollm2-135m", n_resamples=1000)
print(stored.header.strip())
intervals(stored)

# %%
fig, ax = plt.subplots(figsize=(4.5, 2.8))
for method in stored.methods:
    mine = torch.tensor([r["curves"]["deletion"] for r in stored.rows if r["method"] == method])
    steps = torch.arange(1, mine.shape[1] + 1) / mine.shape[1]
    ax.plot(steps, mine.mean(0), marker=".", label=method)
ax.set(xlabel="fraction removed", ylabel="mean p(answer)", title="deletion, all instances")
ax.legend(fontsize=7)
plt.show()

# %% [markdown]
# On the full set HETA has the highest Soft-NS and Soft-NC and the only clearly positive
# DSA, while deletion AOPC barely separates the methods: removing the top 20% of tokens by any
# reasonable ranking already drives p(answer) near 0 on this small model (a ceiling effect).
# `evals/RESULTS.md` discusses each number, including where HETA does *not* win (top-k F1).
#
# To run it yourself (hours on a CPU for the full set; `--limit` and `--methods` trim it):
#
# ```bash
# heta-lens eval curated --limit 50 --out evals/runs/curated-smollm2-135m \
#     --methods heta,integrated_gradients,attention_rollout,occlusion
# ```
