"""The fused graph: ``fuse_arms`` on the base SeldonDeployment, the kustomize component that makes the same
graph on a cluster, and deploys that set the fused node's three model URIs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from inference_graph.executor.fusion import FusionError, fuse_arms
from inference_graph.executor.graph import load_graph
from smartreco.deploy import render_seldon

pytestmark = [pytest.mark.unit]

ROOT = Path(__file__).resolve().parents[2]
SDEP = ROOT / "manifests/base/seldon/seldondeployment.yaml"


def _base_predictor() -> dict:
    return yaml.safe_load(SDEP.read_text())["spec"]["predictors"][0]


def _names(predictor: dict) -> list[str]:
    return [c["name"] for s in predictor["componentSpecs"] for c in s["spec"]["containers"]]


def test_fuse_arms_puts_one_model_per_arm_under_the_router():
    fused = fuse_arms(_base_predictor())
    g = fused["graph"]
    assert (g["name"], g["type"]) == ("ab-router", "ROUTER")
    arms = {a["name"]: {p["name"]: p["value"] for p in a["parameters"]} for a in g["children"]}
    assert set(arms) == {"hybrid-a", "hybrid-b"}
    assert all(a["type"] == "MODEL" and not a.get("children") for a in g["children"])
    assert arms["hybrid-a"]["cf_model_uri"] == "models:/smartreco-cf@champion"
    assert arms["hybrid-b"]["cb_model_uri"] == "models:/smartreco-cb@challenger"
    assert arms["hybrid-a"]["model_uri"] == "models:/smartreco-hybrid@champion"
    assert arms["hybrid-a"]["online_store"] == "sqlite"  # the transformer's parameter moved into the arm
    assert _names(fused) == ["ab-router", "hybrid-a", "hybrid-b"]
    assert _names(_base_predictor()) != _names(fused)  # a copy: the input is untouched


def test_load_graph_fused_resolves_the_fused_class():
    g = load_graph(SDEP, fused=True)
    assert [n.name for n in g.nodes()] == ["ab-router", "hybrid-a", "hybrid-b"]
    assert {n.import_path for n in g.root.children} == {"inference_graph.hybrid_recommender.HybridRecommender"}
    assert [n.name for n in load_graph(SDEP).nodes()][0] == "feature-transformer"


def test_a_graph_of_another_shape_is_refused_by_name():
    p = _base_predictor()
    p["graph"] = p["graph"]["children"][0]  # router root: nothing to fuse
    with pytest.raises(FusionError, match="TRANSFORMER root"):
        fuse_arms(p)
    p = _base_predictor()
    p["graph"]["children"][0]["children"][0]["type"] = "MODEL"
    with pytest.raises(FusionError, match="hybrid-a"):
        fuse_arms(p)


def test_deploy_sets_the_three_uris_on_a_fused_arm(tmp_path):
    doc = yaml.safe_load(SDEP.read_text())
    doc["spec"]["predictors"][0] = fuse_arms(doc["spec"]["predictors"][0])
    template = tmp_path / "fused.yaml"
    template.write_text(yaml.safe_dump(doc))
    uris = {"hybrid": "/m/h", "cf": "/m/cf", "cb": "/m/cb"}
    out = render_seldon(uris, arm="challenger", version="v9", template=template)
    arm = next(a for a in out["spec"]["predictors"][0]["graph"]["children"] if a["name"] == "hybrid-b")
    params = {p["name"]: p["value"] for p in arm["parameters"]}
    assert (params["model_uri"], params["cf_model_uri"], params["cb_model_uri"]) == ("/m/h", "/m/cf", "/m/cb")


def test_kustomize_component_builds_the_graph_fuse_arms_makes(tmp_path, manifest_tools):
    V = manifest_tools
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests", ignore=shutil.ignore_patterns("schemas"))
    shutil.copytree(ROOT / "monitoring", tmp_path / "monitoring")
    k = tmp_path / "manifests/overlays/production/kustomization.yaml"
    k.write_text(k.read_text() + "components:\n  - ../../components/fused-graph\n")
    objs = V.kustomize_build(k.parent)
    assert V.validate_objects(objs) == []
    built = next(o for o in objs if o["kind"] == "SeldonDeployment")["spec"]["predictors"][0]
    expected = fuse_arms(_base_predictor())
    assert built["graph"] == expected["graph"]
    assert _names(built) == _names(expected)
    classes = {
        c["name"]: next(e["value"] for e in c["env"] if e["name"] == "MODEL_NAME")
        for c in built["componentSpecs"][0]["spec"]["containers"]
    }
    assert classes["hybrid-a"] == classes["hybrid-b"] == "inference_graph.hybrid_recommender.HybridRecommender"
    assert classes["ab-router"] == "inference_graph.ab_router.ABRouter"
