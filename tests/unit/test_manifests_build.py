"""Every kustomize overlay (and the canary/shadow components) builds with the real `kubectl kustomize`, and
every object validates strictly against its schema; broken manifests (unknown field, wrong type, bad
kustomization, unknown kind) fail."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.unit]

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"


def _load_validate():
    spec = importlib.util.spec_from_file_location("smartreco_manifest_validate", MANIFESTS / "tools" / "validate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


V = _load_validate()


@pytest.fixture(scope="module")
def built(manifest_tools) -> dict[str, list[dict]]:
    return {p.name: V.kustomize_build(p) for p in V.overlays()}


@pytest.fixture()
def tree(tmp_path) -> Path:
    """A scratch copy of manifests/ + monitoring/ (the platform base includes ../../../monitoring)."""
    shutil.copytree(MANIFESTS, tmp_path / "manifests", ignore=shutil.ignore_patterns("schemas", "__pycache__"))
    shutil.copytree(ROOT / "monitoring", tmp_path / "monitoring")
    return tmp_path


def test_the_expected_overlays_exist():
    assert {p.name for p in V.overlays()} >= {"local", "production", "kserve"}


@pytest.mark.parametrize("overlay", ["local", "production", "kserve"])
def test_overlay_builds_and_every_object_validates(built, overlay):
    objs = built[overlay]
    kinds = {o["kind"] for o in objs}
    assert {"Namespace", "ConfigMap", "StatefulSet", "Deployment", "NetworkPolicy", "ServiceAccount", "Role",
            "RoleBinding", "PodDisruptionBudget", "PrometheusRule", "PodMonitor", "CronJob"} <= kinds
    assert ("SeldonDeployment" in kinds) != ("InferenceGraph" in kinds)
    assert V.validate_objects(objs) == []
    assert all(o["metadata"].get("namespace") == "smartreco" for o in objs if o["kind"] != "Namespace")


@pytest.mark.parametrize("component", ["canary", "shadow"])
def test_components_build_in_the_production_overlay(manifest_tools, tree, component):
    """As docs/deploying.md says: add the component to the production overlay's `components:`."""
    k = tree / "manifests/overlays/production/kustomization.yaml"
    k.write_text(k.read_text() + f"components:\n  - ../../components/{component}\n")
    objs = V.kustomize_build(k.parent)
    assert V.validate_objects(objs) == []
    sdep = next(o for o in objs if o["kind"] == "SeldonDeployment")
    preds = sdep["spec"]["predictors"]
    assert [p["name"] for p in preds] == ["default", "canary"]
    live = [p for p in preds if not p.get("shadow")]
    assert sum(p["traffic"] for p in live) == 100  # Seldon rejects other sums
    assert preds[1].get("shadow", False) is (component == "shadow")
    # the component's images were rewritten by the overlay too
    images = {c["image"] for c in preds[1]["componentSpecs"][0]["spec"]["containers"]}
    assert images == {"registry.example.com/smartreco/smartreco-serving:0.1.0"}


# ---------------------------------------------------------------------------------------- negatives
def _edit(path: Path, fn) -> None:
    docs = list(yaml.safe_load_all(path.read_text()))
    fn(docs)
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def test_unknown_field_in_the_seldondeployment_fails(manifest_tools, tree):
    path = tree / "manifests/base/seldon/seldondeployment.yaml"
    _edit(path, lambda d: d[0]["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["containers"][3]
          .__setitem__("imagePullPolice", "Always"))
    errors = V.validate_objects(V.kustomize_build(tree / "manifests/overlays/production"))
    assert len(errors) == 1 and "imagePullPolice" in errors[0] and "containers.3" in errors[0]


def test_wrong_type_in_a_core_object_fails(manifest_tools, tree):
    mlflow = tree / "manifests/base/platform/mlflow/deployment.yaml"
    _edit(mlflow, lambda d: d[0]["spec"].__setitem__("replicas", "two"))
    errors = V.validate_objects(V.kustomize_build(tree / "manifests/overlays/local"))
    assert len(errors) == 1 and errors[0].startswith("Deployment/mlflow: spec.replicas")


def test_wrong_type_in_a_crd_graph_fails(manifest_tools, tree):
    path = tree / "manifests/base/seldon/seldondeployment.yaml"
    _edit(path, lambda d: d[0]["spec"]["predictors"][0]["graph"].__setitem__("children", {"name": "x"}))
    errors = V.validate_objects(V.kustomize_build(tree / "manifests/overlays/local"))
    assert any("graph.children" in e and "not of type 'array'" in e for e in errors)


def test_unknown_field_in_a_prometheusrule_fails(manifest_tools, tree):
    _edit(tree / "monitoring/prometheus/rules.yaml", lambda d: d[0]["spec"]["groups"][1]["rules"][0]
          .__setitem__("for_", "5m"))
    errors = V.validate_objects(V.kustomize_build(tree / "manifests/overlays/production"))
    assert errors and all("PrometheusRule/smartreco" in e for e in errors)


def test_a_broken_kustomization_fails_to_build(manifest_tools, tree):
    k = tree / "manifests/base/seldon/kustomization.yaml"
    k.write_text(k.read_text().replace("networkpolicy.yaml", "no-such-file.yaml"))
    with pytest.raises(RuntimeError, match="no-such-file.yaml"):
        V.kustomize_build(tree / "manifests/overlays/production")


def test_a_kind_without_a_schema_is_an_error():
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}}
    assert V.validate_objects([obj]) == [
        f"Widget/w: no schema for example.com/v1 Widget (Kubernetes {V.K8S_VERSION} or manifests/schemas/)"]


def test_crd_schemas_have_their_source_noted():
    note = (MANIFESTS / "schemas" / "SOURCE.md").read_text()
    files = sorted(p.name for p in (MANIFESTS / "schemas").glob("*.json"))
    assert len(files) == 6
    for name in files:
        assert f"`{name}`" in note
