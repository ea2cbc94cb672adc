"""MLflow tracking + model registry for SmartReco (pipeline venv only: imports mlflow).

* Backend: ``MLFLOW_TRACKING_URI`` if set, else SQLite at ``runs_dir()/mlflow/mlflow.db`` with
  artifacts under ``runs_dir()/mlflow/artifacts`` (absolute paths, so the cwd does not matter).
* Every training run logs params, metrics (``ndcg@10`` is logged as ``ndcg_at_10``: MLflow forbids
  ``@``), the evaluation report files and three pyfunc models over one serving bundle
  (:mod:`smartreco.tracking.pyfunc`) with explicit ``signature``, ``pip_requirements`` and ``code_paths``.
* Registry: names ``smartreco-cf``, ``smartreco-cb``, ``smartreco-hybrid``. A new version gets the
  alias ``challenger``; it also gets ``champion`` only when :func:`promotion_decision` passes (beats
  the current champion AND MostPopular on NDCG@10). Each promotion appends the version to the
  registered model's ``smartreco.champion_history`` tag; :func:`rollback` moves ``champion`` back to
  the previous entry (``smartreco`` has no CLI for it yet: call ``rollback("smartreco-hybrid")``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from smartreco import settings
from smartreco.paths import runs_dir
from smartreco.tracking.gate import DEFAULT_MARGIN, GATE_METRIC, GateDecision, promotion_decision

EXPERIMENT = "smartreco"
MODEL_NAMES = {"cf": "smartreco-cf", "cb": "smartreco-cb", "hybrid": "smartreco-hybrid"}
CHAMPION, CHALLENGER = "champion", "challenger"
HISTORY_TAG = "smartreco.champion_history"
#: model-version tag with the hybrid's params (the bundle manifest's ``params``): the champion's recipe
PARAMS_TAG = "smartreco.params"
METRIC_TAG_PREFIX = "metric."


def mlflow_key(metric: str) -> str:
    """``ndcg@10`` -> ``ndcg_at_10`` (MLflow's allowed characters)."""
    return metric.replace("@", "_at_")


def tracking_uri() -> str:
    env = settings.MLFLOW_TRACKING_URI.get()
    if env:
        return env
    folder = runs_dir() / "mlflow"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / 'mlflow.db').resolve()}"


def configure(experiment: str = EXPERIMENT):
    """Point mlflow at the tracking/registry URI and make sure the experiment exists; returns a client."""
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        location = None
        if uri.startswith("sqlite:"):
            location = (runs_dir() / "mlflow" / "artifacts").resolve().as_uri()
        client.create_experiment(experiment, artifact_location=location)
    mlflow.set_experiment(experiment)
    return client


def pip_requirements() -> list[str]:
    """What a pyfunc over a bundle needs (the serving runtime's imports), pinned to this env's versions."""
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("mlflow", "numpy", "pandas", "pyarrow", "lightgbm", "pydantic")]


def code_paths() -> list[str]:
    return [str(Path(__file__).resolve().parents[1])]  # the smartreco package


def log_metrics(metrics: Mapping[str, float], prefix: str = "") -> None:
    import mlflow

    clean = {f"{prefix}{mlflow_key(k)}": float(v) for k, v in metrics.items()
             if isinstance(v, (int, float)) and v == v}
    if clean:
        mlflow.log_metrics(clean)


def log_params(params: Mapping[str, object], prefix: str = "") -> None:
    import mlflow

    flat = {f"{prefix}{k}": (json.dumps(v, default=str) if isinstance(v, (dict, list, tuple)) else v)
            for k, v in params.items()}
    mlflow.log_params({k: str(v)[:6000] for k, v in flat.items()})


def log_bundle_models(bundle_dir: Path | str, kinds: tuple[str, ...] = ("cf", "cb", "hybrid")) -> dict[str, str]:
    """Log one pyfunc per kind over the bundle in the active run; returns ``kind -> model URI``."""
    import mlflow

    from smartreco.tracking.pyfunc import BundlePyfunc, signature

    uris = {}
    for kind in kinds:
        info = mlflow.pyfunc.log_model(
            name=f"{kind}_model", python_model=BundlePyfunc(kind), artifacts={"bundle": str(bundle_dir)},
            signature=signature(kind), pip_requirements=pip_requirements(), code_paths=code_paths(),
        )
        uris[kind] = info.model_uri
    return uris


def _history(client, name: str) -> list[str]:
    try:
        tags = client.get_registered_model(name).tags or {}
    except Exception:  # noqa: BLE001 - a model not registered yet has no history
        return []
    return list(json.loads(tags.get(HISTORY_TAG, "[]")))


def champion_metrics(client, name: str) -> dict[str, float] | None:
    """Metrics stored on the current champion version's tags (None when there is no champion)."""
    try:
        mv = client.get_model_version_by_alias(name, CHAMPION)
    except Exception:  # noqa: BLE001 - no alias yet
        return None
    return {k[len(METRIC_TAG_PREFIX):].replace("_at_", "@"): float(v) for k, v in (mv.tags or {}).items()
            if k.startswith(METRIC_TAG_PREFIX)}


def champion_params(name: str = MODEL_NAMES["hybrid"]) -> dict | None:
    """``{"version", "params"}`` of the current champion (its recipe, for a paired re-evaluation on a new
    split); None when there is no champion, it has no recipe tag, or the registry cannot be reached."""
    try:
        client = configure()
        mv = client.get_model_version_by_alias(name, CHAMPION)
    except Exception:  # noqa: BLE001 - no registry / no alias yet: nothing to compare with
        return None
    raw = (mv.tags or {}).get(PARAMS_TAG)
    return {"version": str(mv.version), "params": json.loads(raw)} if raw else None


def register(
    model_uri: str, name: str, metrics: Mapping[str, float], mostpop: Mapping[str, float] | None,
    metric: str = GATE_METRIC, margin: float = DEFAULT_MARGIN, champion_ci: Mapping | None = None,
    params: Mapping | None = None,
) -> tuple[str, GateDecision]:
    """Register a version, alias it ``challenger``, promote to ``champion`` if the gate passes (``margin``:
    :func:`promotion_decision`'s)."""
    import mlflow

    client = configure()
    current = champion_metrics(client, name)
    decision = promotion_decision(metrics, current, mostpop, metric, margin=margin, champion_ci=champion_ci)
    mv = mlflow.register_model(model_uri, name)
    version = str(mv.version)
    for k, v in metrics.items():
        if isinstance(v, (int, float)):
            client.set_model_version_tag(name, version, f"{METRIC_TAG_PREFIX}{mlflow_key(k)}", str(float(v)))
    client.set_model_version_tag(name, version, "smartreco.gate", json.dumps(decision.to_dict()))
    if params is not None:  # the recipe, so a later challenger can refit this version on its own split
        client.set_model_version_tag(name, version, PARAMS_TAG, json.dumps(dict(params), default=str))
    client.set_registered_model_alias(name, CHALLENGER, version)
    if decision.promote:
        promote(client, name, version)
    return version, decision


def promote(client, name: str, version: str) -> None:
    """Make ``version`` the champion and remember it for :func:`rollback`."""
    history = _history(client, name)
    client.set_registered_model_alias(name, CHAMPION, str(version))
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps([*history, str(version)]))


def rollback(name: str = MODEL_NAMES["hybrid"]) -> str:
    """Move ``champion`` back to the previous champion version; returns that version.

    The rolled-back version is dropped from the history (a second rollback goes one further back).
    """
    from smartreco.errors import SmartRecoError

    client = configure()
    history = _history(client, name)
    if len(history) < 2:
        raise SmartRecoError(f"{name}: no previous champion to roll back to (history: {history or 'empty'})")
    previous = history[-2]
    client.set_registered_model_alias(name, CHAMPION, previous)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history[:-1]))
    return previous
