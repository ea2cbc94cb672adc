"""Candidate retrieval: exact blocked top-k for small catalogues, faiss ANN (built offline, memory-mapped) at scale."""

from smartreco.retrieval.index import (
    DEFAULT_ANN_KIND,
    EXACT_MAX_ITEMS,
    ExactIndex,
    FaissANNIndex,
    Index,
    build_index,
    choose_index_kind,
    load_index,
    recall_at_k,
)

__all__ = [
    "DEFAULT_ANN_KIND", "EXACT_MAX_ITEMS", "ExactIndex", "FaissANNIndex", "Index", "build_index",
    "choose_index_kind", "load_index", "recall_at_k",
]
