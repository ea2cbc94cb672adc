"""KFP component: the standalone CF retriever (PureSVD factors, fold-in ready) on a canonical dataset."""

from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.common import component


@component()
def train_cf(dataset: Input[Dataset], model: Output[Model], metrics: Output[Metrics], n_factors: int = 64) -> int:
    """Writes user/item factors + id maps (serving_math layout) to ``model``; returns the factor count."""
    from pathlib import Path

    from smartreco.data.io import load_folder
    from smartreco.training import train_cf as fit

    info = fit(load_folder(Path(dataset.path)), model.path, n_factors=n_factors)
    for key in ("factors", "users", "items", "fit_seconds"):
        metrics.log_metric(f"cf_{key}", float(info[key]))
    model.metadata.update({"kind": "cf", **{k: v for k, v in info.items() if isinstance(v, (int, float, str))}})
    return int(info["factors"])
