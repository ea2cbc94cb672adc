"""A SeldonDeployment's predictor as the Seldon v1 operator makes it: one pod per replica holding the
componentSpec's containers (with the ``PREDICTIVE_UNIT_*`` / ``SELDON_*`` environment and the ``preStop`` sleep the
operator adds to each graph node; its 20 s grace period where the componentSpec gives none) and the executor
container next to them (with the operator's probe timing, and no preStop: the operator gives it none), behind the
Service ``<deployment>-<predictor>`` (REST 8000, gRPC 5001). The one stand-in: the executor container runs the local
executor (``python -m inference_graph.executor --attach``, Seldon's semantics only) instead of Seldon's Go executor,
reading the same SeldonDeployment the operator would hand its executor (here as a mounted file) and calling the nodes
on the pod's loopback at their manifest ports, as Seldon's does. Pure: no engine, no files."""

from __future__ import annotations

import copy
import json
from typing import Any

from smartreco import images
from smartreco.rehearse.translate import (
    Lookup,
    PodSpec,
    ServiceSpec,
    TranslationError,
    make_pod,
    scheduling_notes,
    service_aliases,
)

EXECUTOR = "seldon-container-engine"
REST_PORT = 8000
GRPC_PORT = 5001
#: where the executor container finds the SeldonDeployment (a generated, read-only ConfigMap volume)
GRAPH_DIR = "/etc/seldon-rehearsal"
GRAPH_FILE = "seldondeployment.json"
MODEL_FETCH = "model-fetch"
#: the timing of the operator's probes of its executor container
EXECUTOR_PROBE_TIMING = {
    "initialDelaySeconds": 20,
    "periodSeconds": 5,
    "failureThreshold": 3,
    "successThreshold": 1,
    "timeoutSeconds": 60,
}
#: the preStop hook the operator gives every graph node's container that has no ``lifecycle`` of its own
#: (seldon-core 1.x ``createContainerService``: "Add lifecycle probe"); the executor container gets none, so on a
#: cluster it has SIGTERM at once while the nodes keep serving its in-flight calls for 10 s
NODE_PRE_STOP = {"preStop": {"exec": {"command": ["/bin/sh", "-c", "/bin/sleep 10"]}}}
#: the pod's grace period when the componentSpec gives none: the operator sets 20 s, not Kubernetes' 30 (seldon-core
#: 1.x ``createDeploymentWithoutEngine``: "Set TerminationGracePeriodSeconds")
OPERATOR_GRACE_S = 20


def service_name(sdep: dict[str, Any], predictor: dict[str, Any]) -> str:
    return f"{sdep['metadata']['name']}-{predictor.get('name', 'default')}"


def pod_labels(sdep: dict[str, Any], predictor: dict[str, Any]) -> dict[str, str]:
    """The labels the operator puts on a predictor's pods (the Service selects ``seldon-app``)."""
    return {
        "seldon-app": service_name(sdep, predictor),
        "seldon-deployment-id": sdep["metadata"]["name"],
        **{str(k): str(v) for k, v in (predictor.get("labels") or {}).items()},
    }


def predictor_service(sdep: dict[str, Any], predictor: dict[str, Any]) -> ServiceSpec:
    return ServiceSpec(
        service_name(sdep, predictor),
        [
            {"name": "http", "port": REST_PORT, "targetPort": REST_PORT, "protocol": "TCP"},
            {"name": "grpc", "port": GRPC_PORT, "targetPort": GRPC_PORT, "protocol": "TCP"},
        ],
        {"seldon-app": service_name(sdep, predictor)},
    )


def graph_nodes(graph: dict[str, Any]) -> list[dict[str, Any]]:
    out = [graph]
    for child in graph.get("children") or []:
        out.extend(graph_nodes(child))
    return out


def operator_env(
    sdep: dict[str, Any], predictor: dict[str, Any], node: dict[str, Any], container: dict[str, Any]
) -> list[dict[str, str]]:
    """What the operator adds to a graph node's container (only variables the manifest does not set)."""
    have = {e["name"] for e in container.get("env") or []}
    ports = {e["name"]: e.get("value") for e in container.get("env") or []}
    http = ports.get("PREDICTIVE_UNIT_HTTP_SERVICE_PORT", "9000")
    added = {
        "PREDICTIVE_UNIT_SERVICE_PORT": str(http),
        "PREDICTIVE_UNIT_ID": node["name"],
        "PREDICTIVE_UNIT_IMAGE": str(container.get("image", "")),
        "PREDICTIVE_UNIT_PARAMETERS": json.dumps(node.get("parameters") or []),
        "PREDICTOR_ID": str(predictor.get("name", "default")),
        "PREDICTOR_LABELS": json.dumps(predictor.get("labels") or {}),
        "SELDON_DEPLOYMENT_ID": sdep["metadata"]["name"],
        "SELDON_EXECUTOR_ENABLED": "true",
        "PREDICTIVE_UNIT_METRICS_ENDPOINT": "/prometheus",
    }
    return [{"name": k, "value": v} for k, v in added.items() if k not in have]


def executor_container(sdep: dict[str, Any], predictor: dict[str, Any]) -> dict[str, Any]:
    """The stand-in for Seldon's executor container, with the predictor's ``svcOrchSpec`` env/resources."""
    orch = predictor.get("svcOrchSpec") or {}
    ns = str(sdep["metadata"].get("namespace") or "default")
    return {
        "name": EXECUTOR,
        "image": images.serving_image(),
        "command": ["python", "-m", "inference_graph.executor"],
        "args": [
            "--manifest",
            f"{GRAPH_DIR}/{GRAPH_FILE}",
            "--predictor",
            str(predictor.get("name", "default")),
            "--attach",
            "--host",
            "0.0.0.0",
            "--port",
            str(REST_PORT),
            "--grpc-port",
            str(GRPC_PORT),
            "--feedback-log",
            "off",
        ],
        "env": [
            {"name": "HOME", "value": "/tmp"},
            {"name": "SMARTRECO_RUNS", "value": "/tmp/runs"},
            {"name": "SMARTRECO_ALLOWED_HOSTS", "value": ",".join(service_aliases(service_name(sdep, predictor), ns))},
            *list(orch.get("env") or []),
        ],
        "ports": [{"name": "http", "containerPort": REST_PORT}, {"name": "grpc", "containerPort": GRPC_PORT}],
        # the operator's probes for its executor (seldon-core 1.x ``createExecutorContainer``): readiness GET /ready
        # and liveness GET /live, both initialDelaySeconds 20, periodSeconds 5, failureThreshold 3, timeoutSeconds
        # 60. The local executor answers loopback Host names and SMARTRECO_ALLOWED_HOSTS only (its DNS-rebinding
        # guard): the probe names localhost, clients the Service's names; it has no /live, so liveness is a TCP
        # connect to the same port with the same timing
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": REST_PORT, "httpHeaders": [{"name": "Host", "value": "localhost"}]},
            **EXECUTOR_PROBE_TIMING,
        },
        "livenessProbe": {"tcpSocket": {"port": REST_PORT}, **EXECUTOR_PROBE_TIMING},
        "resources": copy.deepcopy(orch.get("resources") or {}),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
        },
        "volumeMounts": [
            {"name": "seldon-rehearsal-graph", "mountPath": GRAPH_DIR, "readOnly": True},
            {"name": "seldon-rehearsal-tmp", "mountPath": "/tmp"},
        ],
    }


def predictor_pods(
    sdep: dict[str, Any],
    lookup: Lookup,
    rehearsal: str,
    namespace: str,
    base_env: dict[str, str],
    replicas: int | None,
    models_patch: bool,
    generation: str = "",
) -> tuple[list[PodSpec], list[str]]:
    """Every predictor's pods and what the rehearsal changed (printed as notes)."""
    name = sdep["metadata"]["name"]
    pods: list[PodSpec] = []
    notes: list[str] = []
    for predictor in (sdep.get("spec") or {}).get("predictors") or []:
        pname = predictor.get("name", "default")
        components = predictor.get("componentSpecs") or []
        if len(components) != 1:
            raise TranslationError(
                f"SeldonDeployment/{name} predictor {pname}: {len(components)} componentSpecs; "
                "the rehearsal runs one (every node in one pod)"
            )
        spec = copy.deepcopy(components[0].get("spec") or {})
        if spec.get("terminationGracePeriodSeconds") is None:
            spec["terminationGracePeriodSeconds"] = OPERATOR_GRACE_S
        for key, why in (
            ("hpaSpec", "not rehearsed: no autoscaler, replicas stay as rendered (or --replicas)"),
            ("kedaSpec", "not rehearsed: no autoscaler"),
            ("pdbSpec", "not rehearsed: no evictions here"),
        ):
            if components[0].get(key):
                notes.append(f"SeldonDeployment/{name} predictor {pname}: componentSpecs[0].{key} {why}")
        notes.extend(scheduling_notes(f"SeldonDeployment/{name}", spec))
        nodes = {n["name"]: n for n in graph_nodes(predictor.get("graph") or {})}
        by_name = {c["name"]: c for c in spec.get("containers") or []}
        if EXECUTOR in by_name:
            # the operator's addEngineToDeployment returns at once when the pod already has a container of this
            # name: no executor, args, ENGINE_PREDICTOR, probes or ``seldon-app`` label of its own; that container
            # runs as written. An undocumented side effect, not a way to configure Seldon's executor
            raise TranslationError(
                f"SeldonDeployment/{name} predictor {pname}: a componentSpecs container is named {EXECUTOR!r}; "
                "the operator then adds no executor of its own (nor the seldon-app label its Service selects) and "
                "runs that container as written: the rehearsal stands in for the operator's executor only"
            )
        missing = sorted(set(nodes) - set(by_name))
        if missing:
            raise TranslationError(
                f"SeldonDeployment/{name} predictor {pname}: graph node {missing[0]!r} has no "
                "container in componentSpecs"
            )
        for node_name, node in nodes.items():
            c = by_name[node_name]
            c["env"] = [*(c.get("env") or []), *operator_env(sdep, predictor, node, c)]
            if not c.get("lifecycle"):
                c["lifecycle"] = copy.deepcopy(NODE_PRE_STOP)
        graph_cm = f"{name}-{pname}-rehearsal-graph"
        spec["containers"] = [*spec.get("containers", []), executor_container(sdep, predictor)]
        spec["volumes"] = [
            *(spec.get("volumes") or []),
            {"name": "seldon-rehearsal-graph", "configMap": {"name": graph_cm}},
            {"name": "seldon-rehearsal-tmp", "emptyDir": {}},
        ]
        if models_patch:
            before = len(spec.get("initContainers") or [])
            spec["initContainers"] = [c for c in spec.get("initContainers") or [] if c["name"] != MODEL_FETCH]
            if len(spec["initContainers"]) != before:
                notes.append(
                    f"SeldonDeployment/{name}: init container {MODEL_FETCH} (MLflow download) replaced by "
                    "a rehearsal patch: the models volume is filled from --models"
                )
        graph_lookup = Lookup(
            {**lookup.configmaps, graph_cm: {GRAPH_FILE: json.dumps(sdep, sort_keys=True)}}, lookup.secrets
        )
        meta = copy.deepcopy(components[0].get("metadata") or {})
        meta["labels"] = {**(meta.get("labels") or {}), **pod_labels(sdep, predictor)}
        count = replicas if replicas is not None else int(predictor.get("replicas", 1) or 1)
        for i in range(count):
            pods.append(
                make_pod(
                    f"{name}-{pname}{generation}-{i}",
                    f"SeldonDeployment/{name}",
                    {"metadata": meta, "spec": spec},
                    graph_lookup,
                    rehearsal,
                    namespace,
                    base_env,
                )
            )
        notes.append(
            f"SeldonDeployment/{name} predictor {pname}: Seldon's executor stood in for by the local "
            f"executor (container {EXECUTOR}, semantics only), behind Service {service_name(sdep, predictor)}"
        )
    return pods, notes
