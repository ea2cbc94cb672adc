"""The low-latency shape of the graph: each arm's transformer, CF, CB and combiner as one node.

``fuse_arms`` rewrites a predictor of the SeldonDeployment (feature-transformer -> ab-router ->
hybrid combiners over CF/CB models) into ab-router -> one ``HybridRecommender`` MODEL per arm, which
runs the same node classes in process (``inference_graph/hybrid_recommender.py``). The arm nodes keep
their names, so ``meta.routing``, feedback routing, deploys and dashboards see the same arms. The local
executor applies it with ``--fused``; on a cluster the kustomize component
``manifests/components/fused-graph`` makes the same graph (a test checks that they agree).
"""

from __future__ import annotations

import copy
from typing import Any

from inference_graph import NODE_CLASSES
from smartreco.errors import SmartRecoError

FUSED_CLASS = NODE_CLASSES["HybridRecommender"]
#: which child class's model_uri becomes which parameter of the fused node
SOURCE_PARAMS = {NODE_CLASSES["CFModel"]: "cf_model_uri", NODE_CLASSES["CBModel"]: "cb_model_uri"}
#: every node parameter that names a model bundle (a fused arm carries all three)
MODEL_URI_PARAMS = ("model_uri", *SOURCE_PARAMS.values())


class FusionError(SmartRecoError):
    """A graph that is not transformer -> router -> combiners over CF/CB models."""


def _class_of(containers: dict[str, dict], name: str) -> str:
    env = {e["name"]: e.get("value") for e in containers[name].get("env") or []}
    return NODE_CLASSES.get(env.get("MODEL_NAME", ""), env.get("MODEL_NAME", ""))


def _param(node: dict, name: str) -> dict | None:
    return next((p for p in node.get("parameters") or [] if p.get("name") == name), None)


def fuse_arms(predictor: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``predictor`` with every arm fused; FusionError naming what does not fit."""
    out = copy.deepcopy(predictor)
    graph = out.get("graph") or {}
    containers = {
        c["name"]: c
        for spec in out.get("componentSpecs") or []
        for c in (spec.get("spec") or {}).get("containers") or []
    }
    if graph.get("type") != "TRANSFORMER" or len(graph.get("children") or []) != 1:
        raise FusionError("graph: fusing needs a TRANSFORMER root with one ROUTER child")
    router = graph["children"][0]
    if router.get("type") != "ROUTER":
        raise FusionError(f"graph.children[0]: {router.get('name')!r} is not a ROUTER")
    transformer_params = [dict(p) for p in graph.get("parameters") or []]
    dropped = {graph["name"]}
    arms = []
    for arm in router.get("children") or []:
        if arm.get("type") != "COMBINER":
            raise FusionError(f"graph: arm {arm.get('name')!r} is not a COMBINER")
        params = [dict(p) for p in arm.get("parameters") or []]
        for child in arm.get("children") or []:
            target = SOURCE_PARAMS.get(_class_of(containers, child["name"]))
            uri = _param(child, "model_uri")
            if target is None or uri is None:
                raise FusionError(
                    f"graph: {child['name']!r} under {arm['name']!r} is not a CF/CB model with a model_uri"
                )
            params.append({**uri, "name": target})
            append = _param(child, "append_feedback")  # the feedback-appending leaf: now the arm itself
            if append is not None and _param({"parameters": params}, "append_feedback") is None:
                params.append(dict(append))
            dropped.add(child["name"])
        taken = {p["name"] for p in params}
        params += [p for p in transformer_params if p["name"] not in taken]
        fused = {"name": arm["name"], "type": "MODEL", "parameters": params}
        if arm.get("logger"):  # the request logger stays on the arm (the node that answers)
            fused["logger"] = dict(arm["logger"])
        arms.append(fused)
        for env in containers[arm["name"]].get("env") or []:
            if env["name"] == "MODEL_NAME":
                env["value"] = FUSED_CLASS
    out["graph"] = {**{k: v for k, v in router.items() if k != "children"}, "children": arms}
    for spec in out.get("componentSpecs") or []:
        pod = spec.get("spec") or {}
        pod["containers"] = [c for c in pod.get("containers") or [] if c["name"] not in dropped]
    return out
