"""The pipeline image carries the drivers the rendered overlays configure for the servers that run from it
(issue #19, SECURITY.md O8): MLflow's ``postgresql+psycopg2://`` backend store needs psycopg2 (named in the URI:
SQLAlchemy 2.1's default for a bare ``postgresql://`` is psycopg 3, which the rehearsal found missing), ``s3://``
artifacts and Feast's ``s3://`` registry need boto3, and ``mlflow server --expose-prometheus`` imports
prometheus_flask_exporter. Read from the renders, so a manifest that starts using another store fails here until
the pin is added; the tested venv (installed from the same extra) must import them."""

from __future__ import annotations

import importlib.util
import re
import tomllib

import pytest

from smartreco import images
from smartreco.paths import project_root
from smartreco.rehearse import public_images, render

pytestmark = [pytest.mark.unit]

#: what a rendered pipeline-image container's command line or environment says -> (distribution, import name)
NEEDS = {
    "postgresql+psycopg2://": ("psycopg2-binary", "psycopg2"),
    "s3://": ("boto3", "boto3"),
    "--expose-prometheus": ("prometheus-flask-exporter", "prometheus_flask_exporter"),
}


def _pipeline_extra() -> dict[str, str]:
    meta = tomllib.loads((project_root() / "pyproject.toml").read_text())
    pins = {}
    for line in meta["project"]["optional-dependencies"]["pipeline"]:
        m = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?(.*)$", line)
        assert m, line
        pins[m.group(1).lower()] = m.group(2)
    return pins


def _pipeline_image_texts(objects: list[dict]) -> str:
    """Everything a container of the pipeline image is started with: command, args, its own env values and the
    ConfigMaps it reads with envFrom / configMapKeyRef."""
    configmaps = {o["metadata"]["name"]: o.get("data") or {} for o in objects if o["kind"] == "ConfigMap"}
    texts: list[str] = []
    stack = [o for o in objects if o["kind"] not in ("ConfigMap", "Secret")]
    while stack:  # every container anywhere in the object (pod templates, componentSpecs, jobTemplates)
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        image = node.get("image")
        if isinstance(image, str) and public_images.project_local(image) == images.pipeline_image():
            texts += [str(x) for x in (node.get("command") or []) + (node.get("args") or [])]
            for e in node.get("env") or []:
                ref = ((e.get("valueFrom") or {}).get("configMapKeyRef")) or {}
                texts.append(str(e.get("value") or configmaps.get(ref.get("name"), {}).get(ref.get("key"), "")))
            for src in node.get("envFrom") or []:
                name = (src.get("configMapRef") or {}).get("name")
                texts += [str(v) for v in configmaps.get(name, {}).values()]
        stack.extend(v for v in node.values() if isinstance(v, (dict, list)))
    return "\n".join(texts)


@pytest.mark.parametrize("overlay", render.OVERLAYS)
def test_pipeline_image_has_the_drivers_its_overlay_configures(manifest_tools, overlay: str) -> None:  # noqa: ARG001
    text = _pipeline_image_texts(render.load_objects(render.render(overlay)))
    pins = _pipeline_extra()
    used = [marker for marker in NEEDS if marker in text]
    assert used == list(NEEDS), f"{overlay}: the renders no longer use {set(NEEDS) - set(used)}: update NEEDS"
    for marker in used:
        dist, module = NEEDS[marker]
        assert pins.get(dist, "").startswith("=="), f"{marker} in {overlay}: pin {dist} in the pipeline extra"
        assert importlib.util.find_spec(module) is not None, f"the pipeline venv lacks {dist} (scripts/setup.sh)"
