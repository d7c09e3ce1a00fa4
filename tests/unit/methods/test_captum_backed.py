"""What holds for every baseline Captum computes: lazy import, no Captum warnings."""

import subprocess
import sys
import warnings

import pytest

from heta_lens.methods import gradients as G
from heta_lens.methods.occlusion import occlusion

CAPTUM_BACKED = [G.saliency, G.input_x_gradient, G.integrated_gradients, occlusion]


def test_import_heta_lens_does_not_import_captum():
    code = "import sys, heta_lens; sys.exit('captum' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@pytest.mark.parametrize("fn", CAPTUM_BACKED, ids=lambda f: f.__name__)
def test_no_captum_warnings(model, tokens, fn):
    """Inputs already require grad and batch sizes are valid, so Captum has nothing to say."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn(model, tokens)
    assert [str(w.message) for w in caught if "captum" in w.filename] == []
