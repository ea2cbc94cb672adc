"""The /model page's data: what is deployed, its evaluation metrics in MLflow's registry, and the last
drift verdict. Each part degrades to a sentence saying why it is missing (no MLflow client in this
environment, nothing registered, no drift run yet) instead of failing the page."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: the registered model the graph serves (smartreco.tracking.mlflow_tracking.MODEL_NAMES["hybrid"])
HYBRID_MODEL = "smartreco-hybrid"
ALIASES = ("champion", "challenger")


@dataclass
class ModelView:
    deployed: dict[str, Any] | None = None  # the local deploy record, if any
    versions: list[dict[str, Any]] = field(default_factory=list)  # per alias: version, run, metrics
    mlflow_problem: str | None = None
    tracking_uri: str = ""
    drift: dict[str, Any] | None = None
    drift_path: str | None = None


def registry_versions(model: str = HYBRID_MODEL) -> tuple[list[dict[str, Any]], str, str | None]:
    """(versions by alias with their run's metrics, tracking URI, problem). Read-only: creates nothing."""
    try:
        from mlflow.tracking import MlflowClient

        from smartreco.tracking.mlflow_tracking import tracking_uri
    except ImportError:
        return [], "", "the MLflow client is not installed in this environment (pipeline venv/image has it)"
    uri = tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        return [], uri, f"no MLflow database at {uri} yet: run the training pipeline (make demo)"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    out: list[dict[str, Any]] = []
    try:
        for alias in ALIASES:
            try:
                mv = client.get_model_version_by_alias(model, alias)
            except Exception:  # noqa: BLE001 - MLflow raises RestException/MlflowException for "no alias"
                continue
            metrics = dict(client.get_run(mv.run_id).data.metrics) if mv.run_id else {}
            out.append(
                {
                    "alias": alias,
                    "version": mv.version,
                    "run_id": mv.run_id,
                    "created": mv.creation_timestamp,
                    "metrics": {k.replace("_at_", "@"): v for k, v in sorted(metrics.items())},
                }
            )
    except Exception as exc:  # noqa: BLE001 - an unreachable tracking server is a sentence on the page
        return [], uri, f"MLflow at {uri} could not be read: {exc}"
    if not out:
        return [], uri, f"no version of {model} has a champion or challenger alias in MLflow at {uri} yet"
    merged: dict[str, dict[str, Any]] = {}  # one table per version: "champion, challenger" when they are one
    for v in out:
        if v["version"] in merged:
            merged[v["version"]]["alias"] += f", {v['alias']}"
        else:
            merged[v["version"]] = v
    return list(merged.values()), uri, None


def latest_drift(search: Path) -> tuple[dict[str, Any] | None, Path | None]:
    """The newest ``drift.json`` under ``search`` (a drift pipeline run or ``smartreco drift report``)."""
    if search.is_file():
        found = [search]
    elif search.is_dir():
        found = list(search.rglob("drift.json"))
    else:
        found = []
    if not found:
        return None, None
    newest = max(found, key=lambda p: p.stat().st_mtime)
    try:
        return json.loads(newest.read_text()), newest
    except (OSError, ValueError):
        return None, newest


def model_view(drift_search: Path) -> ModelView:
    from smartreco.deploy import current_local

    view = ModelView(deployed=current_local())
    view.versions, view.tracking_uri, view.mlflow_problem = registry_versions()
    view.drift, path = latest_drift(drift_search)
    view.drift_path = str(path) if path else None
    return view
