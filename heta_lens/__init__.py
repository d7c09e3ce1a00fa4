"""heta-lens: Hessian-Enhanced Token Attribution (HETA) for TransformerLens models."""

from heta_lens.aggregate import AggregatedResult
from heta_lens.attribute import attribute, windowed_attribute
from heta_lens.batch import attribute_many, read_results
from heta_lens.config import (
    ABLATIONS,
    Exact,
    HetaConfig,
    Hvp,
    Information,
    LayerSampled,
    LowRank,
    RowBlock,
    Window,
)
from heta_lens.curvature import (
    curvature_interactions,
    curvature_sensitivity,
    layer_curvature,
    lowrank_curvature,
    row_curvature,
)
from heta_lens.curvature.hvp import HvpOperator, hessian_vector_products
from heta_lens.gate import gate_from_capture, semantic_gate, semantic_gate_by_head
from heta_lens.information import information_gain
from heta_lens.models import list_models, load_hf, load_model, load_tokenizer
from heta_lens.presets import PRESETS, preset
from heta_lens.records import Record, read_records
from heta_lens.registry import (
    AttributionMethod,
    MethodSpec,
    get_method,
    list_methods,
    register_method,
)
from heta_lens.result import AttributionResult, HetaResult
from heta_lens.targets import Contrast, Metric, Span, Target, Token

# Registers every built-in method (HETA and its ablations, then the baselines).
from heta_lens import methods as _methods  # noqa: E402, F401  isort: skip

__all__ = [
    "ABLATIONS",
    "PRESETS",
    "AggregatedResult",
    "AttributionMethod",
    "AttributionResult",
    "Contrast",
    "Exact",
    "HetaConfig",
    "HetaResult",
    "Hvp",
    "HvpOperator",
    "Information",
    "LayerSampled",
    "LowRank",
    "MethodSpec",
    "Metric",
    "attribute",
    "attribute_many",
    "curvature_interactions",
    "curvature_sensitivity",
    "gate_from_capture",
    "get_method",
    "hessian_vector_products",
    "information_gain",
    "layer_curvature",
    "list_methods",
    "list_models",
    "load_hf",
    "load_model",
    "load_tokenizer",
    "lowrank_curvature",
    "preset",
    "read_records",
    "read_results",
    "Record",
    "register_method",
    "RowBlock",
    "Span",
    "Target",
    "Token",
    "Window",
    "row_curvature",
    "semantic_gate",
    "semantic_gate_by_head",
    "windowed_attribute",
]
