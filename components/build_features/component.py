"""KFP component: validated tables -> point-in-time feature parquet tables for Feast."""

from kfp.dsl import Dataset, Input, Metrics, Output

from components.common import component


@component()
def build_features(
    dataset: Input[Dataset],
    features: Output[Dataset],
    metrics: Output[Metrics],
    embeddings: bool = True,
    embedding_cache_dir: str = "",
    half_life_days: float = 30.0,
    encoder: str = "minilm",
) -> None:
    """user_stats, item_stats, user_history, item_embeddings (+ manifest.json) in ``features.path``.

    ``encoder="hash"`` swaps MiniLM for a content-hash stand-in (smoke runs and tests only)."""
    from pathlib import Path

    from smartreco.data.io import load_folder
    from smartreco.features.build import build_features as build
    from smartreco.features.build import hash_encode

    data = load_folder(Path(dataset.path))
    out = build(
        data,
        Path(features.path),
        embeddings=embeddings,
        half_life_days=half_life_days,
        cache_dir=Path(embedding_cache_dir) if embedding_cache_dir else None,
        encode=hash_encode if encoder == "hash" else None,
    )
    for name, n in out.rows.items():
        metrics.log_metric(f"rows_{name}", n)
        metrics.log_metric(f"seconds_{name}", out.seconds[name])
