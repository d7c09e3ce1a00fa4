"""AttributionResult / HetaResult: identity ``==``, value comparison with ``equals``."""

import math

import torch

import heta_lens as H
from heta_lens.result import AttributionResult, from_dict
from heta_lens.testing import tiny_bridge


def _result(**changes) -> AttributionResult:
    base = {
        "tokens": torch.tensor([1, 5, 7]),
        "target": 2,
        "scores": torch.tensor([0.25, 0.75]),
        "method": "m",
    }
    return AttributionResult(**(base | changes))


def test_identity_eq_and_hash():
    a, b = _result(), _result()
    assert a == a and a != b and len({a, b}) == 2  # hashable, no tensor == ambiguity
    assert a.equals(b) and b.equals(a)


def test_equals_compares_every_field():
    a = _result()
    assert not a.equals(_result(scores=torch.tensor([0.25, 0.7500001])))
    assert a.equals(_result(scores=torch.tensor([0.25, 0.7500001])), rtol=1e-6)
    assert not a.equals(_result(scores=torch.tensor([0.25, 0.75, 0.0])[:2].flip(0)))
    assert not a.equals(_result(method="other"))
    assert not a.equals(_result(tokens=torch.tensor([1, 5, 8])))
    assert not a.equals(_result(diagnostics={"steps": 3}))
    assert not a.equals(_result(target_log_prob=-1.0))
    assert not a.equals("not a result")


def test_nan_fields_are_equal_to_themselves():
    a = _result(scores=torch.tensor([math.nan, 1.0]), signed=True)
    assert math.isnan(a.target_log_prob) and a.equals(a)
    assert a.equals(_result(scores=torch.tensor([math.nan, 1.0]), signed=True))


def test_equal_infinities_are_equal_and_opposite_ones_are_not():
    a = _result(target_value=math.inf, target_log_prob=-math.inf)
    assert a.equals(_result(target_value=math.inf, target_log_prob=-math.inf))
    assert a.equals(_result(target_value=math.inf, target_log_prob=-math.inf), rtol=1e-3)
    assert not a.equals(_result(target_value=-math.inf, target_log_prob=-math.inf))
    assert not a.equals(_result(target_value=1e308, target_log_prob=-math.inf), rtol=1e-3)


def test_heta_result_survives_a_round_trip_but_not_a_changed_component():
    r = H.attribute(tiny_bridge(), torch.tensor([1, 5, 7, 3]), config=H.HetaConfig.flat(n_probes=2))
    back = from_dict(r.to_dict())
    assert (
        isinstance(back, H.HetaResult) and back.equals(r, rtol=1e-6) and r.equals(back, rtol=1e-6)
    )
    assert r.curvature is not None
    changed = from_dict(r.to_dict() | {"curvature": (r.curvature * 2).tolist()})
    assert not changed.equals(r, rtol=1e-6)
    plain = AttributionResult(tokens=r.tokens, target=r.target, scores=r.scores, method="heta")
    assert not plain.equals(r) and not r.equals(plain)
