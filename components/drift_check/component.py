"""KFP component: Evidently drift (KS / chi-square p-values) of current data vs the training reference."""

from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Output

from components.common import component


@component()
def drift_check(reference: Input[Dataset], current: Input[Dataset], report: Output[HTML], result: Output[Artifact],
                summary: Output[Markdown], metrics: Output[Metrics], threshold: float = 0.3, alpha: float = 0.05,
                max_rows: int = 20000, reference_predictions: str = "", current_predictions: str = "",
                ) -> bool:
    """Returns ``drift_detected`` (a single output: kfp.local's condition evaluator resolves only those).
    ``reference``/``current``: folders of canonical tables. Prediction logs (parquet/CSV with ``score``,
    optional ``rank``/``category``/``variant``) add a predictions view when both are given."""
    import shutil
    from pathlib import Path

    import pandas as pd

    from smartreco.data.io import load_folder
    from smartreco.monitoring.drift import check_drift

    def read(path: str):
        if not path:
            return None
        return pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)

    out = Path(result.path)
    res = check_drift(load_folder(reference.path), load_folder(current.path), out, threshold=threshold, alpha=alpha,
                      max_rows=max_rows, reference_predictions=read(reference_predictions),
                      current_predictions=read(current_predictions))
    shutil.copy2(out / "drift_interactions.html", report.path)  # the UI shows one HTML per output
    Path(summary.path).write_text(res.to_markdown())
    for key, value in res.metrics().items():
        metrics.log_metric(key.replace(".", "_"), float(value))
    print(res.to_markdown())
    return bool(res.drift_detected)
