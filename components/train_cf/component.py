"""KFP component: the standalone CF model (PyTorch Lightning MF + ONNX scorer, or PureSVD) on a canonical dataset."""

from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.common import component


@component()
def train_cf(
    dataset: Input[Dataset], model: Output[Model], metrics: Output[Metrics], n_factors: int = 64,
    backend: str = "lightning", epochs: int = 0, seed: int = 42,
) -> int:
    """Writes user/item factors + id maps (serving_math layout) to ``model``; returns the factor count."""
    from pathlib import Path

    from smartreco.data.io import load_folder
    from smartreco.training import train_cf as fit

    info = fit(load_folder(Path(dataset.path)), model.path, n_factors=n_factors, backend=backend,
               epochs=epochs or None, seed=seed)
    for key in ("factors", "users", "items", "fit_seconds"):
        metrics.log_metric(f"cf_{key}", float(info[key]))
    model.metadata.update({"kind": "cf", **{k: v for k, v in info.items() if isinstance(v, (int, float, str))}})
    return int(info["factors"])
