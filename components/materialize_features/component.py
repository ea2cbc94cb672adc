"""KFP component: render the Feast repo over the feature tables, `feast apply`, materialize-incremental."""

from kfp.dsl import Dataset, Input, Metrics, Output

from components.common import component


@component()
def materialize_features(
    features: Input[Dataset],
    metrics: Output[Metrics],
    store_dir: str = "",
    online_store: str = "sqlite",
    redis_url: str = "localhost:6379",
) -> str:
    """Returns the Feast repo folder (default ``<runs>/feast``), ready for ``feast serve``."""
    import time
    from pathlib import Path

    from smartreco.features.store import apply_repo, materialize, prepare_repo

    repo = prepare_repo(Path(features.path), store_dir or None, online=online_store, redis_url=redis_url)
    t0 = time.perf_counter()
    apply_repo(repo)
    t1 = time.perf_counter()
    materialize(repo)
    metrics.log_metric("apply_seconds", round(t1 - t0, 3))
    metrics.log_metric("materialize_seconds", round(time.perf_counter() - t1, 3))
    return str(repo)
