"""Evaluation datasets: LongRA, TellMeWhy/wikitext sequences and the curated NarrativeQA ⊕ SciQ
set, as :class:`EvalInstance` lists for a given model (cached under ``cache_dir()/evals``)."""

from heta_lens.evals.datasets.align import Encoded, encode_aligned
from heta_lens.evals.datasets.base import EvalInstance, FilterStats, resolve_data_dir
from heta_lens.evals.datasets.cache import model_fingerprint
from heta_lens.evals.datasets.curated import (
    DEFAULT_CURATED_FILTER,
    PROMPT_TEMPLATE,
    curated_survival,
    default_curated_path,
    filter_top_k,
    load_curated,
)
from heta_lens.evals.datasets.curated_build import build_curated, read_curated, write_curated
from heta_lens.evals.datasets.jsonl import read_jsonl, write_jsonl
from heta_lens.evals.datasets.longra import load_longra, longra_survival
from heta_lens.evals.datasets.rephrasing import load_rephrasing, rephrasing_rho
from heta_lens.evals.datasets.sequence import load_sequence, sequence_targets

__all__ = [
    "DEFAULT_CURATED_FILTER",
    "PROMPT_TEMPLATE",
    "Encoded",
    "EvalInstance",
    "FilterStats",
    "build_curated",
    "curated_survival",
    "default_curated_path",
    "encode_aligned",
    "filter_top_k",
    "load_curated",
    "load_longra",
    "load_rephrasing",
    "load_sequence",
    "longra_survival",
    "rephrasing_rho",
    "model_fingerprint",
    "read_curated",
    "read_jsonl",
    "resolve_data_dir",
    "sequence_targets",
    "write_curated",
    "write_jsonl",
]
