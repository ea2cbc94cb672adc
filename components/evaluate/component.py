"""KFP component: the ARCHITECTURE §5 protocol (shared evaluator): hybrid vs peers, paired bootstrap CI."""

from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Output

from components.common import component


@component()
def evaluate(dataset: Input[Dataset], report: Output[Dataset], metrics: Output[Metrics], html: Output[HTML],
             summary: Output[Markdown], models: str = "hybrid,mostpop") -> float:
    """Writes evaluation.json/.md/.html into ``report``; returns the hybrid's NDCG@10 (0 if absent)."""
    import shutil
    from pathlib import Path

    from smartreco.data.io import load_folder
    from smartreco.training import evaluate as run

    names = [m.strip() for m in models.split(",") if m.strip()]
    payload = run(load_folder(Path(dataset.path)), report.path, names, progress=False)
    for name, values in payload["models"].items():
        for key in ("ndcg@10", "recall@10", "precision@10", "map@10", "hitrate@10", "coverage"):
            if isinstance(values.get(key), (int, float)):
                metrics.log_metric(f"{name}_{key.replace('@', '_at_')}", float(values[key]))
    shutil.copyfile(Path(report.path) / "evaluation.html", html.path)
    shutil.copyfile(Path(report.path) / "evaluation.md", summary.path)
    return float(payload["models"].get("hybrid", {}).get("ndcg@10", 0.0))
