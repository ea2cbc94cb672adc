"""KFP component: content item vectors (MiniLM sentence embeddings + TF-IDF + numeric item features,
or hashed tags/categories)."""

from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.common import component


@component()
def train_cb(dataset: Input[Dataset], vectors: Output[Model], metrics: Output[Metrics],
             encoder: str = "minilm+tfidf+numeric", embedding_cache_dir: str = "") -> int:
    """Writes ``item_vectors.npy`` + ``item_ids.parquet`` to ``vectors``; returns the vector size.

    ``embedding_cache_dir``: the MiniLM content-hash cache build-features fills (the pipeline passes its
    parameter to both), so texts already encoded are read, not encoded again; empty: ``<runs>/cache/minilm``."""
    from pathlib import Path

    from smartreco.data.io import load_folder
    from smartreco.training import train_cb as fit

    info = fit(load_folder(Path(dataset.path)), vectors.path, encoder=encoder,
               cache_dir=embedding_cache_dir or None)
    metrics.log_metric("cb_dims", float(info["dims"]))
    metrics.log_metric("cb_items", float(info["items"]))
    metrics.log_metric("cb_fit_seconds", float(info["fit_seconds"]))
    vectors.metadata.update({"kind": "cb", "encoder": info["encoder"], "dims": int(info["dims"])})
    return int(info["dims"])
