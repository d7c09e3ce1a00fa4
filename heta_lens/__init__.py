"""heta-lens: Hessian-Enhanced Token Attribution (HETA) for TransformerLens models."""

from heta_lens.attribute import attribute
from heta_lens.config import ABLATIONS, HetaConfig
from heta_lens.curvature import curvature_sensitivity
from heta_lens.gate import gate_from_capture, semantic_gate
from heta_lens.hvp import HvpOperator, hessian_vector_products
from heta_lens.information import information_gain
from heta_lens.registry import (
    AttributionMethod,
    MethodSpec,
    get_method,
    list_methods,
    register_method,
)
from heta_lens.result import AttributionResult, HetaResult

__all__ = [
    "ABLATIONS",
    "AttributionMethod",
    "AttributionResult",
    "HetaConfig",
    "HetaResult",
    "HvpOperator",
    "MethodSpec",
    "attribute",
    "curvature_sensitivity",
    "gate_from_capture",
    "get_method",
    "hessian_vector_products",
    "information_gain",
    "list_methods",
    "register_method",
    "semantic_gate",
]
