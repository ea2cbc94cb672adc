"""What the registry decided for a training run, plus the pipeline's extra gate floor.

``register`` (``smartreco.training.register``) gives every new version the ``challenger`` alias and
moves ``champion`` when :func:`~smartreco.tracking.gate.promotion_decision` passes (beats MostPopular,
and the paired bootstrap CI against the current champion on the same split has its lower bound
above -``gate_margin``). The training pipeline adds an absolute floor (``gate_min_ndcg``): a
version that was promoted but misses the floor is demoted again here (``champion`` goes back to
the previous champion, or is removed when there was none), so the registry and the deploy step
always agree: deploy runs only when this says ``promoted``.
"""

from __future__ import annotations

import json

from smartreco.tracking import mlflow_tracking as T


def _alias_version(client, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except Exception:  # noqa: BLE001 - no such alias / model
        return None


def _demote(client, name: str, version: str) -> None:
    """Undo ``promote`` for ``version``: champion back to the previous entry of the history, or none."""
    history = [v for v in json.loads((client.get_registered_model(name).tags or {}).get(T.HISTORY_TAG, "[]"))]
    if history and history[-1] == version:
        history = history[:-1]
    client.set_registered_model_tag(name, T.HISTORY_TAG, json.dumps(history))
    if history:
        client.set_registered_model_alias(name, T.CHAMPION, history[-1])
    else:
        client.delete_registered_model_alias(name, T.CHAMPION)


def gate_outcome(version: str, metric_value: float, min_metric: float = 0.0, metric: str = "ndcg@10") -> dict:
    """``{"promoted", "version", "versions", "model_uris", "reasons"}`` for the hybrid ``version``."""
    client = T.configure()
    hybrid = T.MODEL_NAMES["hybrid"]
    versions = {kind: _alias_version(client, name, T.CHALLENGER) for kind, name in T.MODEL_NAMES.items()}
    versions["hybrid"] = str(version)
    promoted = _alias_version(client, hybrid, T.CHAMPION) == str(version)
    reasons: list[str] = []
    gate: dict = {}
    try:
        gate = json.loads((client.get_model_version(hybrid, str(version)).tags or {}).get("smartreco.gate", "{}"))
        reasons += list(gate.get("reasons", []))
    except Exception:  # noqa: BLE001 - a version registered without the gate tag
        pass
    if metric_value < min_metric:
        if promoted:
            for kind, name in T.MODEL_NAMES.items():
                if versions.get(kind) and _alias_version(client, name, T.CHAMPION) == versions[kind]:
                    _demote(client, name, versions[kind])
        for kind, name in T.MODEL_NAMES.items():
            if versions.get(kind):
                client.set_model_version_tag(name, versions[kind], "smartreco.gate_floor",
                                             f"{metric} {metric_value:.4f} < {min_metric}")
        promoted = False
        reasons.append(f"{metric} {metric_value:.4f} is below the pipeline's gate floor {min_metric}: "
                       "kept as challenger")
    elif min_metric > 0:
        reasons.append(f"{metric} {metric_value:.4f} clears the gate floor {min_metric}")
    uris = {kind: f"models:/{T.MODEL_NAMES[kind]}/{v}" for kind, v in versions.items() if v}
    return {"promoted": promoted, "version": str(version), "versions": versions, "model_uris": uris,
            "reasons": reasons, "tracking_uri": T.tracking_uri(), "margin": gate.get("margin"),
            "ci": gate.get("ci"), "report": gate_report(gate, promoted, reasons)}


def gate_report(gate: dict, promoted: bool, reasons: list[str]) -> str:
    """The gate's Markdown report: the decision, the paired CI against the champion and the margin delta."""
    from smartreco.tracking.gate import GateDecision

    decision = GateDecision(promoted, gate.get("metric", "ndcg@10"), gate.get("candidate"), gate.get("champion"),
                            gate.get("mostpop"), list(reasons), float(gate.get("margin") or 0.0), gate.get("ci"))
    return decision.markdown()
