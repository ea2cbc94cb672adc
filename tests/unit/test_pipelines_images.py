"""Images agree everywhere: components, compiled YAML, Dockerfiles, pyproject extras and the manifests."""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from smartreco.containers.spec import IMAGES
from smartreco.images import PIPELINE_IMAGE, SERVING_IMAGE
from smartreco.paths import project_root

pytestmark = [pytest.mark.unit]
ROOT = project_root()


def _components():
    for path in sorted((ROOT / "components").glob("*/component.py")):
        name = path.parent.name
        mod = importlib.import_module(f"components.{name}.component")
        yield name, getattr(mod, name)


def test_every_component_declares_the_pipeline_image():
    comps = list(_components())
    assert len(comps) >= 12
    for name, comp in comps:
        spec = comp.component_spec.implementation.container
        assert spec.image == PIPELINE_IMAGE == IMAGES["pipeline"].tag, name
        assert "pip install" not in " ".join(spec.command or []), name


def _extra(name: str) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [re.split(r"[=<>\[;]", r, maxsplit=1)[0].strip().lower() for r in project["optional-dependencies"][name]]


def test_the_images_install_what_their_entrypoints_need():
    # KFP steps run `python3 -m kfp.dsl.executor_main`: the pipeline extra must carry kfp
    assert IMAGES["pipeline"].extra == "pipeline" and "kfp" in _extra("pipeline")
    # graph nodes run `seldon-core-microservice`: the serving extra must carry seldon-core, and no torch
    assert IMAGES["serving"].extra == "serving" and "seldon-core" in _extra("serving")
    assert "torch" not in _extra("serving")
    serving_df = (ROOT / IMAGES["serving"].dockerfile).read_text()
    assert "seldon-core-microservice" in serving_df


def test_dockerfiles_default_to_the_official_bases_of_the_spec():
    for spec in IMAGES.values():
        text = (ROOT / spec.dockerfile).read_text()
        assert f"ARG BASE_IMAGE={spec.official_base}" in text, spec.dockerfile
        assert spec.official_base.endswith(f"{spec.python}-slim")


def test_the_seldon_manifest_uses_the_serving_image_for_every_graph_node():
    doc = yaml.safe_load((ROOT / "manifests/base/seldon/seldondeployment.yaml").read_text())
    for predictor in doc["spec"]["predictors"]:
        names, stack = set(), [predictor["graph"]]
        while stack:
            node = stack.pop()
            names.add(node["name"])
            stack.extend(node.get("children") or [])
        containers = [c for spec in predictor["componentSpecs"] for c in spec["spec"]["containers"]]
        assert {c["name"] for c in containers} == names
        for c in containers:
            assert c["image"] == SERVING_IMAGE == IMAGES["serving"].tag, c["name"]


def test_the_rendered_deploy_manifest_keeps_the_serving_image(tmp_path):
    from smartreco.deploy import render_seldon

    doc = render_seldon({"hybrid": "/m", "cf": "/m", "cb": "/m"}, version="3")
    images = {c["image"] for p in doc["spec"]["predictors"] for s in p["componentSpecs"]
              for c in s["spec"]["containers"]}
    assert images == {SERVING_IMAGE}
    assert Path(ROOT / "components" / "Dockerfile").is_file()
