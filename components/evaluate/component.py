"""KFP component: the ARCHITECTURE §5 protocol (shared evaluator): hybrid vs peers, paired bootstrap CI."""

from typing import Optional

from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Model, Output

from components.common import component


@component()
def evaluate(dataset: Input[Dataset], report: Output[Dataset], metrics: Output[Metrics], html: Output[HTML],
             summary: Output[Markdown], models: str = "hybrid,mostpop,ease", compare_champion: bool = True,
             tracking_uri: str = "", embedding_cache_dir: str = "",
             bundle: Optional[Input[Model]] = None) -> float:  # noqa: UP045 - KFP reads Optional[...], not "| None"
    """Writes evaluation.json/.md/.html into ``report``; returns the hybrid's NDCG@10 (0 if absent).

    ``bundle`` (the challenger: train-hybrid's output): the hybrid scored is the recipe its manifest.json
    records (``params``: content encoder, CF backend, the standalone CF's factors / epoch cap), refitted on the
    split the way the champion's is, so the gate judges the model register registers; without it (outside
    the pipeline) the default recipe. ``report.metadata["hybrid_recipe"]`` says which was scored.
    ``compare_champion``: the registry's current champion recipe is refitted on the same split and the
    paired bootstrap of hybrid - champion is written for the gate (reads the registry: not cached).
    ``embedding_cache_dir``: the MiniLM content-hash cache build-features and train-cb fill; every model
    here that encodes item text (the hybrid, ``cb``, the champion) reads it; empty: ``<runs>/cache/minilm``.
    Metrics: every model's ranking metrics and each model's paired CI against MostPopular and EASE."""
    import os
    import shutil
    from pathlib import Path

    from smartreco import settings
    from smartreco.data.io import load_folder
    from smartreco.training import evaluate as run

    if tracking_uri:
        os.environ[settings.MLFLOW_TRACKING_URI.name] = tracking_uri
    champion = None
    if compare_champion:
        from smartreco.tracking.mlflow_tracking import champion_params

        champion = champion_params()
    recipe = None
    if bundle is not None:
        import json

        recipe = json.loads((Path(bundle.path) / "manifest.json").read_text()).get("params") or {}
    names = [m.strip() for m in models.split(",") if m.strip()]
    payload = run(load_folder(Path(dataset.path)), report.path, names, progress=False, champion=champion,
                  cache_dir=embedding_cache_dir or None, recipe=recipe)
    report.metadata["hybrid_recipe"] = payload["protocol"].get("hybrid_recipe", {})
    for name, values in payload["models"].items():
        for key in ("ndcg@10", "recall@10", "precision@10", "map@10", "hitrate@10", "coverage"):
            if isinstance(values.get(key), (int, float)):
                metrics.log_metric(f"{name}_{key.replace('@', '_at_')}", float(values[key]))
    comparisons = payload.get("comparisons", {})
    for name, entry in comparisons.get("by_model", {}).items():  # the margin to each peer, with its CI
        for c in entry.values():
            for field in ("mean_diff", "ci_low", "ci_high"):
                metrics.log_metric(f"{name}_vs_{c['reference']}_{field}", float(c[field]))
    if "champion" in comparisons:
        for field in ("mean_diff", "ci_low", "ci_high"):
            metrics.log_metric(f"hybrid_vs_champion_{field}", float(comparisons["champion"][field]))
    shutil.copyfile(Path(report.path) / "evaluation.html", html.path)
    shutil.copyfile(Path(report.path) / "evaluation.md", summary.path)
    return float(payload["models"].get("hybrid", {}).get("ndcg@10", 0.0))
