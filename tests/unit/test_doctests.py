import doctest
import importlib

import pytest

MODULES = [
    "heta_lens.gate",
    "heta_lens.config",
    "heta_lens.config_flat",
    "heta_lens.config_parts",
    "heta_lens.presets",
    "heta_lens.curvature.exact",
    "heta_lens.curvature.row",
    "heta_lens.curvature.lowrank",
    "heta_lens.curvature.layer",
    "heta_lens.information",
    "heta_lens.aggregate",
    "heta_lens.attribute",
    "heta_lens.windows",
    "heta_lens.result",
    "heta_lens.viz.cells",
    "heta_lens.viz.page",
    "heta_lens.viz.table",
    "heta_lens.methods.gradients",
    "heta_lens.methods.attention",
    "heta_lens.evals.metrics.rank",
    "heta_lens.evals.metrics.causal",
    "heta_lens.evals.metrics.causal_sites",
    "heta_lens.evals.metrics.sensitivity",
    "heta_lens.evals.methods",
    "heta_lens.evals.datasets.rephrasing",
    "heta_lens.evals.decoding",
    "heta_lens.evals.convergence",
    "heta_lens.evals.stored",
    "heta_lens.evals.summary",
    "heta_lens.evals.verdicts",
    "heta_lens.flags",
    "heta_lens.devices",
    "heta_lens.hooks.precision",
]


@pytest.mark.bridge
@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(
        importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE
    )
    assert result.attempted > 0
    assert result.failed == 0
