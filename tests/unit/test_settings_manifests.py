"""The manifests give every deployable the variables it needs (smartreco/settings.py), under the names the code
reads: every overlay (and the production overlay with each component) is rendered with the real
`kubectl kustomize`; each workload container is mapped to its deployable and its environment (env, envFrom
ConfigMap/Secret, the image's Dockerfile ENV) is checked against every setting that names it in ``needs``.
Every key a ConfigMap hands to a container as environment must be a declared setting."""

from __future__ import annotations

import fnmatch
import re
import shutil
from pathlib import Path

import pytest

from smartreco import settings

pytestmark = [pytest.mark.unit]

ROOT = Path(__file__).resolve().parents[2]
#: image name (without registry/tag) -> its Dockerfile (ENV there reaches every container of the image)
DOCKERFILES = {"smartreco-serving": ROOT / "inference_graph/Dockerfile",
               "smartreco-pipeline": ROOT / "components/Dockerfile"}
#: workload name -> deployable name used in Setting.needs (graph nodes are mapped by their node name)
WORKLOADS = {"feast-feature-server": "feast", "mlflow": "mlflow", "smartreco-drift": "drift-job",
             "smartreco-events": "event-service", "smartreco-events-archive": "events-archive", "smartreco-web": "web",
             "redis": "redis", "postgres": "postgres"}
POD_PATHS = {"Deployment": ("spec", "template", "spec"), "StatefulSet": ("spec", "template", "spec"),
             "DaemonSet": ("spec", "template", "spec"), "Job": ("spec", "template", "spec"),
             "CronJob": ("spec", "jobTemplate", "spec", "template", "spec")}
COMPONENTS = ("canary", "shadow", "fused-graph")


def _dig(obj: dict, path: tuple[str, ...]) -> dict:
    for key in path:
        obj = obj.get(key) or {}
    return obj


def containers(objs: list[dict]) -> list[tuple[str, dict]]:
    """(deployable, container) for every container of every workload in ``objs``."""
    out = []
    for obj in objs:
        kind, name = obj["kind"], obj["metadata"]["name"]
        if kind in POD_PATHS:
            pod = _dig(obj, POD_PATHS[kind])
            deployable = WORKLOADS.get(name, name)
            out += [(deployable, c) for c in pod.get("containers") or []]
            out += [(f"init:{c['name']}", c) for c in pod.get("initContainers") or []]
        elif kind == "SeldonDeployment":
            for predictor in obj["spec"]["predictors"]:
                for spec in predictor.get("componentSpecs") or []:
                    pod = spec.get("spec") or {}
                    out += [(f"node:{c['name']}", c) for c in pod.get("containers") or []]
                    out += [(f"init:{c['name']}", c) for c in pod.get("initContainers") or []]
        elif kind == "InferenceService":
            for c in _dig(obj, ("spec", "predictor")).get("containers") or []:
                out.append((f"node:{name}", c))
    return out


def _image_env(image: str) -> set[str]:
    base = image.rsplit("/", 1)[-1].split(":")[0].split("@")[0]
    dockerfile = DOCKERFILES.get(base)
    if dockerfile is None:
        return set()
    text = dockerfile.read_text().replace("\\\n", " ")
    names = set()
    for line in text.splitlines():
        if line.strip().startswith("ENV "):
            names |= set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", line))
    return names


def environment(container: dict, config_maps: dict[str, dict]) -> tuple[set[str], list[str]]:
    """(names the container's environment holds, problems such as a ConfigMap that is not rendered)."""
    names, problems = set(), []
    for env in container.get("env") or []:
        names.add(env["name"])
        ref = (env.get("valueFrom") or {}).get("configMapKeyRef")
        if ref and not ref.get("optional") and ref["key"] not in config_maps.get(ref["name"], {}):
            problems.append(f"{env['name']}: ConfigMap {ref['name']} has no key {ref['key']}")
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            ref = source["configMapRef"]["name"]
            if ref not in config_maps:
                problems.append(f"envFrom ConfigMap {ref} is not in the rendered manifests")
            names |= set(config_maps.get(ref, {}))
        if "secretRef" in source:
            ref = source["secretRef"]["name"]
            names |= {s.name for s in settings.SETTINGS.values() if s.secret == ref}
    names |= _image_env(container.get("image", ""))
    return names, problems


def _needs(setting: settings.Setting, deployable: str) -> bool:
    return any(fnmatch.fnmatchcase(deployable, pattern) for pattern in setting.needs)


def env_config_maps(objs: list[dict]) -> set[str]:
    """Names of the ConfigMaps some container takes environment from."""
    used = set()
    for _, c in containers(objs):
        used |= {s["configMapRef"]["name"] for s in c.get("envFrom") or [] if "configMapRef" in s}
        used |= {e["valueFrom"]["configMapKeyRef"]["name"] for e in c.get("env") or []
                 if "configMapKeyRef" in (e.get("valueFrom") or {})}
    return used


def missing_settings(objs: list[dict]) -> list[str]:
    """Every (deployable, variable) a rendered manifest set leaves out, as readable lines."""
    config_maps = {o["metadata"]["name"]: o.get("data") or {} for o in objs if o["kind"] == "ConfigMap"}
    seldon = {f"node:{c['name']}" for o in objs if o["kind"] == "SeldonDeployment"
              for p in o["spec"]["predictors"] for s in p.get("componentSpecs") or []
              for c in (s.get("spec") or {}).get("containers") or []}
    out = []
    for deployable, container in containers(objs):
        names, problems = environment(container, config_maps)
        out += [f"{deployable}: {p}" for p in problems]
        for s in settings.SETTINGS.values():
            if not _needs(s, deployable) or s.cluster in ("default", "local"):
                continue
            if s.cluster == "platform" and deployable in seldon:
                continue  # Seldon's operator sets it on every graph container
            if s.name not in names:
                out.append(f"{deployable} ({container['name']}): {s.name} not set ({s.cluster}: "
                           f"{settings.CLUSTER_WAYS[s.cluster]})")
    return out


def unknown_config_keys(objs: list[dict]) -> list[str]:
    used = env_config_maps(objs)
    return [f"ConfigMap {o['metadata']['name']}: {key} is not a variable declared in smartreco/settings.py"
            for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] in used
            for key in o.get("data") or {} if key not in settings.SETTINGS]


@pytest.fixture(scope="module")
def rendered(manifest_tools, tmp_path_factory) -> dict[str, list[dict]]:
    """Every overlay, plus the production overlay with each component, rendered once."""
    out = {p.name: manifest_tools.kustomize_build(p) for p in manifest_tools.overlays()}
    tree = tmp_path_factory.mktemp("manifests")
    for component in COMPONENTS:
        root = tree / component
        shutil.copytree(ROOT / "manifests", root / "manifests", ignore=shutil.ignore_patterns("schemas"))
        shutil.copytree(ROOT / "monitoring", root / "monitoring")
        k = root / "manifests/overlays/production/kustomization.yaml"
        k.write_text(k.read_text() + f"components:\n  - ../../components/{component}\n")
        out[f"production+{component}"] = manifest_tools.kustomize_build(k.parent)
    return out


def test_every_overlay_renders_some_graph_nodes(rendered):
    assert {"local", "production", "kserve"} <= set(rendered)
    for name, objs in rendered.items():
        deployables = {d for d, _ in containers(objs)}
        assert "node:feature-transformer" in deployables or "node:hybrid-a" in deployables, name
        assert {"feast", "mlflow"} <= deployables, name


def test_each_deployable_gets_every_variable_it_needs(rendered):
    problems = {name: missing_settings(objs) for name, objs in rendered.items()}
    assert {k: v for k, v in problems.items() if v} == {}


def test_every_config_map_key_is_a_declared_variable(rendered):
    problems = {name: unknown_config_keys(objs) for name, objs in rendered.items()}
    assert {k: v for k, v in problems.items() if v} == {}


def test_feature_server_and_redis_reach_the_deployables_under_the_names_the_code_reads(rendered):
    """The bug this module exists for: the ConfigMap set FEAST_FEATURE_SERVER_URL, the code read
    SMARTRECO_FEATURE_SERVER, and every user was served as unknown on a cluster."""
    for name, objs in rendered.items():
        config = next(o["data"] for o in objs
                      if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "smartreco-config")
        assert settings.FEATURE_SERVER.parse(config["SMARTRECO_FEATURE_SERVER"]).startswith("http://"), name
        assert "FEAST_FEATURE_SERVER_URL" not in config and "REDIS_HOST" not in config, name
        feast_yaml = next(o["data"]["feature_store.yaml"] for o in objs if o["metadata"]["name"] == "feast-repo")
        assert "${SMARTRECO_REDIS_URL}" in feast_yaml, name


# --------------------------------------------------------------------- the check itself can fail
def _sdep(env_from: list[dict], env: list[dict] | None = None, image: str = "other:1") -> dict:
    container = {"name": "feature-transformer", "image": image, "envFrom": env_from, "env": env or []}
    return {"kind": "SeldonDeployment", "metadata": {"name": "g"},
            "spec": {"predictors": [{"componentSpecs": [{"spec": {"containers": [container]}}]}]}}


def test_a_node_without_the_config_map_is_reported():
    objs = [{"kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"SMARTRECO_FEATURE_SERVER": "x:1"}},
            _sdep([])]
    problems = missing_settings(objs)
    assert any("SMARTRECO_FEATURE_SERVER not set" in p for p in problems)
    assert any("SMARTRECO_HOME not set" in p for p in problems)  # not the project's image: no Dockerfile ENV
    assert not any("PREDICTIVE_UNIT_ID" in p for p in problems)  # Seldon sets it


def test_a_renamed_config_key_is_reported_both_ways():
    objs = [{"kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"FEAST_FEATURE_SERVER_URL": "x:1"}},
            _sdep([{"configMapRef": {"name": "cfg"}}], image="smartreco-serving:0.1.0")]
    assert any("SMARTRECO_FEATURE_SERVER not set" in p for p in missing_settings(objs))
    assert unknown_config_keys(objs) == [
        "ConfigMap cfg: FEAST_FEATURE_SERVER_URL is not a variable declared in smartreco/settings.py"]


def test_a_missing_config_map_and_image_env_are_handled():
    objs = [_sdep([{"configMapRef": {"name": "nowhere"}}], image="registry.example.com/x/smartreco-serving:0.1.0")]
    problems = missing_settings(objs)
    assert "node:feature-transformer: envFrom ConfigMap nowhere is not in the rendered manifests" in problems
    assert not any("SMARTRECO_HOME" in p for p in problems)  # the serving Dockerfile sets it
