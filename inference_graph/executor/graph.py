"""The graph model, parsed from the SeldonDeployment (the one description of the graph)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from inference_graph import NODE_CLASSES
from smartreco.errors import SmartRecoError
from smartreco.paths import project_root

NODE_TYPES = ("MODEL", "ROUTER", "COMBINER", "TRANSFORMER", "OUTPUT_TRANSFORMER")
DEFAULT_MANIFEST = Path("manifests/base/seldon/seldondeployment.yaml")
_CASTS = {
    "INT": int,
    "FLOAT": float,
    "DOUBLE": float,
    "STRING": str,
    "BOOL": lambda v: str(v).lower() in ("1", "true", "yes", "on"),
}


class GraphError(SmartRecoError):
    """A SeldonDeployment the executor cannot run (unknown type, missing container, ...)."""


@dataclass
class GraphNodeSpec:
    name: str
    type: str
    class_name: str
    image: str
    parameters: list[dict[str, Any]] = field(default_factory=list)
    children: list[GraphNodeSpec] = field(default_factory=list)
    implementation: str | None = None
    methods: list[str] = field(default_factory=list)
    #: Seldon's request logger of this node (``{mode, url}``), None when it has none
    logger: dict[str, Any] | None = None
    #: the node's container and its pod spec's securityContext + volumes, as the manifest has them (the
    #: container launcher takes env, ports, resources, mounts and security settings from here)
    container: dict[str, Any] = field(default_factory=dict, repr=False)
    pod: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def import_path(self) -> str:
        return NODE_CLASSES.get(self.class_name, self.class_name)

    def kwargs(self) -> dict[str, Any]:
        """Constructor arguments exactly as seldon-core's ``parse_parameters`` builds them."""
        return {p["name"]: _CASTS[p.get("type", "STRING")](p["value"]) for p in self.parameters}

    def param(self, name: str, default: Any = None) -> Any:
        return self.kwargs().get(name, default)

    def parameters_json(self) -> str:
        return json.dumps(self.parameters)

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()

    @property
    def does_input(self) -> bool:
        return self.type in ("MODEL", "TRANSFORMER") or "TRANSFORM_INPUT" in self.methods

    @property
    def takes_feedback(self) -> bool:
        return self.type in ("MODEL", "ROUTER") or "SEND_FEEDBACK" in self.methods


@dataclass
class GraphSpec:
    deployment: str
    predictor: str
    root: GraphNodeSpec
    #: the SeldonDeployment's annotations (``seldon.io/rest-timeout``, ``seldon.io/grpc-timeout``)
    annotations: dict[str, str] = field(default_factory=dict)
    namespace: str = "default"

    def timeout_ms(self, protocol: str = "rest", default: float = 2000.0) -> float:
        """The deployment's per-call timeout to a node, as Seldon's executor applies it. The local executor
        calls nodes over REST (or in process), so ``rest`` is the one it uses; ``grpc`` is read for a gRPC
        node transport, which it does not have."""
        raw = self.annotations.get(f"seldon.io/{protocol}-timeout")
        try:
            return float(raw) if raw is not None else default
        except ValueError:
            raise GraphError(f"metadata.annotations.seldon.io/{protocol}-timeout: not a number: {raw!r}") from None

    def nodes(self) -> list[GraphNodeSpec]:
        return list(self.root.walk())

    def node(self, name: str) -> GraphNodeSpec:
        for n in self.root.walk():
            if n.name == name:
                return n
        raise KeyError(name)


def _containers(predictor: dict) -> dict[str, dict]:
    out = {}
    for spec in predictor.get("componentSpecs") or []:
        pod = spec.get("spec") or {}
        for c in pod.get("containers") or []:
            out[c["name"]] = {**c, "_pod": {k: pod[k] for k in ("securityContext", "volumes") if k in pod}}
    return out


def _build(node: dict, containers: dict[str, dict], where: str) -> GraphNodeSpec:
    name = node.get("name")
    if not name:
        raise GraphError(f"{where}.name: required")
    ntype = node.get("type", "MODEL")
    if ntype not in NODE_TYPES:
        raise GraphError(f"{where}.type: {ntype!r} is not one of {', '.join(NODE_TYPES)}")
    container = containers.get(name)
    if container is None:
        raise GraphError(f"componentSpecs: no container named {name!r} for graph node {name!r}")
    env = {e["name"]: e.get("value") for e in container.get("env") or []}
    class_name = env.get("MODEL_NAME")
    if not class_name:
        raise GraphError(f"componentSpecs.{name}.env.MODEL_NAME: required (the node class)")
    children = [
        _build(c, containers, f"{where}.children[{i}]") for i, c in enumerate(node.get("children") or [])
    ]
    if ntype == "COMBINER" and not children:
        raise GraphError(f"{where}: COMBINER {name!r} needs children")
    return GraphNodeSpec(
        name=name,
        type=ntype,
        class_name=class_name,
        image=container.get("image", ""),
        parameters=list(node.get("parameters") or []),
        children=children,
        implementation=node.get("implementation"),
        methods=list(node.get("methods") or []),
        logger=dict(node["logger"]) if isinstance(node.get("logger"), dict) else None,
        container={k: v for k, v in container.items() if k != "_pod"},
        pod=dict(container.get("_pod") or {}),
    )


def load_graph(path: str | Path | None = None, predictor: str | None = None, fused: bool = False) -> GraphSpec:
    """Parse the SeldonDeployment at ``path`` (default: the repo's manifest); ``fused``: each arm as one
    node (``fusion.fuse_arms``, the low-latency shape)."""
    path = Path(path) if path else project_root() / DEFAULT_MANIFEST
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise GraphError(f"manifest: {path} not found") from None
    if not isinstance(doc, dict) or doc.get("kind") != "SeldonDeployment":
        raise GraphError(f"manifest: {path} is not a SeldonDeployment")
    predictors = (doc.get("spec") or {}).get("predictors") or []
    if not predictors:
        raise GraphError("spec.predictors: empty")
    chosen = next((p for p in predictors if predictor in (None, p.get("name"))), None)
    if chosen is None:
        raise GraphError(f"spec.predictors: no predictor named {predictor!r}")
    if fused:
        from inference_graph.executor.fusion import fuse_arms

        chosen = fuse_arms(chosen)
    root = _build(chosen["graph"], _containers(chosen), "graph")
    meta = doc.get("metadata") or {}
    return GraphSpec(
        deployment=meta["name"],
        predictor=chosen.get("name", "default"),
        root=root,
        annotations={str(k): str(v) for k, v in (meta.get("annotations") or {}).items()},
        namespace=str(meta.get("namespace") or "default"),
    )


def override_parameters(graph: GraphSpec, overrides: dict[str, dict[str, Any]]) -> None:
    """Set node parameters (``{node: {name: value}}``, ``*`` for every node that has the parameter)."""
    for node in graph.nodes():
        for key in ("*", node.name):
            for pname, value in (overrides.get(key) or {}).items():
                found = [p for p in node.parameters if p["name"] == pname]
                if found:
                    found[0]["value"] = str(value)
                elif key == node.name:
                    node.parameters.append({"name": pname, "type": _type_of(value), "value": str(value)})


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT"
    if isinstance(value, float):
        return "FLOAT"
    return "STRING"
