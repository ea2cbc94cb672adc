"""The manifests agree with the code: the SeldonDeployment graph is what the local executor runs and what
the overlays deploy; node classes, images, ports and env vars match inference_graph/, smartreco/images.py
and inference_graph/Dockerfile; every pod is locked down; no secret values; KServe mirrors the graph."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

from inference_graph import NODE_CLASSES
from inference_graph.executor.graph import load_graph
from smartreco.images import PIPELINE_IMAGE, SERVING_IMAGE

pytestmark = [pytest.mark.unit]

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
SDEP = MANIFESTS / "base/seldon/seldondeployment.yaml"
DOCKERFILE = ROOT / "inference_graph/Dockerfile"
_spec = importlib.util.spec_from_file_location("smartreco_manifest_validate", MANIFESTS / "tools/validate.py")
V = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(V)
POD_KINDS = {"Deployment": "spec.template.spec", "StatefulSet": "spec.template.spec",
             "CronJob": "spec.jobTemplate.spec.template.spec"}
SECRETS = {"smartreco-postgres", "smartreco-object-store", "smartreco-redis", "smartreco-state"}


@pytest.fixture(scope="module")
def built(manifest_tools) -> dict[str, list[dict]]:
    return {p.name: V.kustomize_build(p) for p in V.overlays()}


def _get(obj: dict, dotted: str):
    for part in dotted.split("."):
        obj = obj[part]
    return obj


def _pod_specs(objs: list[dict]):
    for o in objs:
        if o["kind"] in POD_KINDS:
            yield f"{o['kind']}/{o['metadata']['name']}", _get(o, POD_KINDS[o["kind"]])
        elif o["kind"] == "SeldonDeployment":
            for p in o["spec"]["predictors"]:
                for i, cs in enumerate(p["componentSpecs"]):
                    yield f"SeldonDeployment/{p['name']}/componentSpecs[{i}]", cs["spec"]
        elif o["kind"] == "InferenceService":
            yield f"InferenceService/{o['metadata']['name']}", o["spec"]["predictor"]


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env") or []}


def _tree(node: dict):
    yield node
    for c in node.get("children") or []:
        yield from _tree(c)


def _shape(node: dict) -> tuple:
    return (node["name"], node.get("type"), json.dumps(node.get("parameters"), sort_keys=True),
            tuple(_shape(c) for c in node.get("children") or []))


# ------------------------------------------------------------------------------------- the graph
def test_the_base_file_stays_one_plain_document_the_executor_reads():
    docs = list(yaml.safe_load_all(SDEP.read_text()))
    assert len(docs) == 1 and docs[0]["kind"] == "SeldonDeployment"
    graph = load_graph(SDEP)
    assert [n.name for n in graph.nodes()] == [n["name"] for n in _tree(docs[0]["spec"]["predictors"][0]["graph"])]


def test_every_overlay_deploys_the_same_graph_as_the_base_file(built):
    base = _shape(yaml.safe_load(SDEP.read_text())["spec"]["predictors"][0]["graph"])
    for overlay in ("local", "production"):
        sdep = next(o for o in built[overlay] if o["kind"] == "SeldonDeployment")
        assert _shape(sdep["spec"]["predictors"][0]["graph"]) == base, overlay


def test_each_node_container_runs_a_node_class_the_way_seldon_core_microservice_imports_it():
    graph = load_graph(SDEP)
    for node in graph.nodes():
        # seldon-core-microservice NAME: "module.Class" -> import module, getattr Class
        module, _, cls = node.class_name.rpartition(".")
        assert module, f"{node.name}: MODEL_NAME {node.class_name!r} is not module.Class"
        assert node.class_name in NODE_CLASSES.values(), node.name
        assert importlib.util.find_spec(module) is not None, module
        source = Path(importlib.util.find_spec(module).origin).read_text()
        assert re.search(rf"^class {cls}\b", source, re.M), f"{module} has no class {cls}"
        assert node.image == SERVING_IMAGE


def test_node_types_match_the_node_classes():
    expected = {"TRANSFORMER": "FeatureTransformer", "ROUTER": "ABRouter", "COMBINER": "HybridCombiner"}
    for node in load_graph(SDEP).nodes():
        if node.type in expected:
            assert node.class_name.endswith("." + expected[node.type]), node.name
        else:
            assert node.type == "MODEL" and node.class_name.rsplit(".", 1)[1] in ("CFModel", "CBModel")


def test_every_model_uri_parameter_has_a_fetched_folder():
    node_env = yaml.safe_load((MANIFESTS / "base/platform/node-env.yaml").read_text())["data"]
    mapping = json.loads(node_env["SMARTRECO_MODEL_URIS"])
    uris = {p["value"] for n in load_graph(SDEP).nodes() for p in n.parameters if p["name"] == "model_uri"}
    assert uris and uris <= set(mapping)
    assert all(path.startswith("/models/") for path in mapping.values())


# ------------------------------------------------------------------------- images, ports, env vars
def test_ports_and_env_agree_with_the_serving_dockerfile():
    text = DOCKERFILE.read_text()
    cmd = text[text.index("CMD "):]
    for var in ("MODEL_NAME", "PREDICTIVE_UNIT_HTTP_SERVICE_PORT", "PREDICTIVE_UNIT_GRPC_SERVICE_PORT",
                "PREDICTIVE_UNIT_METRICS_SERVICE_PORT"):
        assert f"${var}" in cmd, var
    assert "seldon-core-microservice" in cmd
    assert re.search(r"^EXPOSE 9000 9500 6000$", text, re.M)
    uid = int(re.search(r"^USER (\d+)", text, re.M).group(1))
    sdep = yaml.safe_load(SDEP.read_text())
    pod = sdep["spec"]["predictors"][0]["componentSpecs"][0]["spec"]
    assert pod["securityContext"]["runAsUser"] == uid
    seen: set[int] = set()
    for i, c in enumerate(pod["containers"]):
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        env = _env(c)
        # the operator's numbering: http 9000+i, grpc 9500+i, metrics 6000+i in container order
        assert ports == {"http": 9000 + i, "grpc": 9500 + i, "metrics": 6000 + i}, c["name"]
        assert env["PREDICTIVE_UNIT_HTTP_SERVICE_PORT"] == str(ports["http"])
        assert env["PREDICTIVE_UNIT_GRPC_SERVICE_PORT"] == str(ports["grpc"])
        assert env["PREDICTIVE_UNIT_METRICS_SERVICE_PORT"] == str(ports["metrics"])
        # /health/status calls the node's health_status(), which fails until its bundle is loaded; ping would not
        assert c["readinessProbe"]["httpGet"] == {"path": "/health/status", "port": ports["http"]}
        assert not seen & set(ports.values())
        seen |= set(ports.values())


def test_images_are_the_ones_smartreco_images_defines(built):
    serving_name, tag = SERVING_IMAGE.rsplit(":", 1)
    pipeline_name, ptag = PIPELINE_IMAGE.rsplit(":", 1)
    for overlay, objs in built.items():
        for where, pod in _pod_specs(objs):
            for c in pod.get("containers", []) + pod.get("initContainers", []):
                image = c["image"]
                if "smartreco" not in image:
                    continue
                name, _, t = image.rpartition(":")
                assert name.endswith(serving_name) or name.endswith(pipeline_name), (overlay, where, image)
                assert t == (tag if name.endswith(serving_name) else ptag), (overlay, where, image)


def test_kserve_mirrors_the_graph(built):
    objs = built["kserve"]
    isvcs = {o["metadata"]["name"]: o for o in objs if o["kind"] == "InferenceService"}
    nodes = {n.name: n for n in load_graph(SDEP).nodes() if n.type != "ROUTER"}
    assert set(isvcs) == set(nodes)
    for name, node in nodes.items():
        env = _env(isvcs[name]["spec"]["predictor"]["containers"][0])
        assert env["MODEL_NAME"] == node.class_name
        assert json.loads(env["PREDICTIVE_UNIT_PARAMETERS"]) == node.parameters
    ig = next(o for o in objs if o["kind"] == "InferenceGraph")
    urls = [s["serviceUrl"] for n in ig["spec"]["nodes"].values() for s in n["steps"] if "serviceUrl" in s]
    assert {re.match(r"http://([a-z0-9-]+)-predictor\.", u).group(1) for u in urls} == set(nodes)
    splitter = [n for n in ig["spec"]["nodes"].values() if n["routerType"] == "Splitter"]
    assert len(splitter) == 1 and sum(s["weight"] for s in splitter[0]["steps"]) == 100


# ------------------------------------------------------------------------------------------ hardening
def test_every_pod_is_locked_down(built):
    for overlay, objs in built.items():
        for where, pod in _pod_specs(objs):
            ctx = pod["securityContext"]
            assert ctx["runAsNonRoot"] is True and ctx["seccompProfile"]["type"] == "RuntimeDefault", where
            assert pod.get("automountServiceAccountToken") is False, where
            for c in pod.get("containers", []) + pod.get("initContainers", []):
                sc = c["securityContext"]
                label = f"{overlay}: {where}/{c['name']}"
                assert sc["readOnlyRootFilesystem"] is True, label
                assert sc["allowPrivilegeEscalation"] is False, label
                assert sc["capabilities"]["drop"] == ["ALL"], label
                assert {"cpu", "memory"} <= set(c["resources"]["requests"]) & set(c["resources"]["limits"]), label


#: how long Seldon's executor keeps an idle connection to a node pooled: it calls nodes through Go's
#: http.DefaultTransport (seldon-core executor/api/rest/client.go, getMetricsRoundTripper), IdleConnTimeout 90 s
SELDON_EXECUTOR_IDLE_S = 90


def test_nodes_keep_idle_connections_open_longer_than_either_executor_pools_them(built):
    # a node that closes first can cut off a POST the executor has just sent on that connection (neither Go's
    # client nor aiohttp re-sends a POST): a failed node call, a 503 when it was the only path
    from inference_graph.executor.transport import RestTransport

    for overlay, objs in built.items():
        env = next(o["data"] for o in objs
                   if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("smartreco-node-env"))
        keepalive = int(env["GUNICORN_KEEPALIVE"])
        assert keepalive > SELDON_EXECUTOR_IDLE_S and keepalive > RestTransport.KEEPALIVE_S, overlay


def test_long_running_containers_have_probes(built):
    for overlay, objs in built.items():
        for where, pod in _pod_specs(objs):
            if where.startswith("CronJob/"):
                continue
            for c in pod["containers"]:
                assert "readinessProbe" in c, f"{overlay}: {where}/{c['name']}"
                if not where.startswith("InferenceService/"):  # KServe adds its own liveness handling
                    assert "livenessProbe" in c, f"{overlay}: {where}/{c['name']}"


def test_no_secret_values_in_the_repo_only_references(built):
    text = "\n".join(p.read_text() for p in MANIFESTS.rglob("*.yaml"))
    assert not re.search(r"^kind:\s*Secret\s*$", text, re.M)
    for overlay, objs in built.items():
        assert not [o for o in objs if o["kind"] == "Secret"], overlay
        refs = set(re.findall(r"'secret(?:KeyRef|Ref)': \{[^}]*'name': '([^']+)'", str(objs)))
        assert refs == SECRETS, overlay
    docs = (ROOT / "docs/deploying.md").read_text()
    for name in SECRETS:
        assert f"kubectl -n smartreco create secret generic {name}" in docs


def test_network_policies_deny_by_default_and_cover_every_service(built):
    for overlay, objs in built.items():
        pols = [o for o in objs if o["kind"] == "NetworkPolicy"]
        assert any(p["spec"]["podSelector"] == {} and p["spec"]["policyTypes"] == ["Ingress"] for p in pols)
        selected = [p["spec"]["podSelector"].get("matchLabels", {}) for p in pols]
        for svc in (o for o in objs if o["kind"] == "Service"):
            sel = svc["spec"]["selector"]
            assert any(s and s.items() <= sel.items() for s in selected), f"{overlay}: {svc['metadata']['name']}"


def test_deploying_doc_matches_the_manifests():
    docs = (ROOT / "docs/deploying.md").read_text()
    for overlay in V.overlays():
        assert f"manifests/overlays/{overlay.name}" in docs
    for path in re.findall(r"kubectl apply -k ([^\s`]+)", docs):
        assert (ROOT / path / "kustomization.yaml").exists(), path
    for comp in ("canary", "shadow"):
        assert f"../../components/{comp}" in docs
    assert SERVING_IMAGE in docs and PIPELINE_IMAGE in docs
    assert "/seldon/smartreco/smartreco/api/v1.0/predictions" in docs
