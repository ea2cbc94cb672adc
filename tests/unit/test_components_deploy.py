"""Deploy: the SeldonDeployment is rendered with the new model URIs; local target records, cluster applies."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import yaml

from smartreco import deploy as D

pytestmark = [pytest.mark.unit]


def _params(doc: dict) -> dict[str, str]:
    out, stack = {}, [doc["spec"]["predictors"][0]["graph"]]
    while stack:
        node = stack.pop()
        stack.extend(node.get("children") or [])
        for p in node.get("parameters") or []:
            if p["name"] == "model_uri":
                out[node["name"]] = p["value"]
    return out


def test_render_sets_the_champion_arm_only():
    doc = D.render_seldon({"hybrid": "models:/smartreco-hybrid/7", "cf": "models:/smartreco-cf/7",
                           "cb": "models:/smartreco-cb/7"}, version="7")
    uris = _params(doc)
    assert uris["hybrid-a"] == "models:/smartreco-hybrid/7" and uris["cf-a"].endswith("cf/7")
    assert uris["hybrid-b"] == "models:/smartreco-hybrid@challenger"  # untouched
    assert doc["metadata"]["annotations"][f"{D.VERSION_ANNOTATION}.champion"] == "7"
    with pytest.raises(D.DeployError, match="unknown kind"):
        D.render_seldon({"ranker": "x"})
    with pytest.raises(D.DeployError, match="arm"):
        D.render_seldon({"cf": "x"}, arm="c")


def test_local_target_writes_the_manifest_and_a_record(tmp_path, monkeypatch):
    monkeypatch.setenv("SMARTRECO_RUNS", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no kubectl: auto means local
    res = D.deploy({k: "/bundles/v3" for k in D.KINDS}, version="3", target="auto")
    assert res.target == "local" and not res.applied
    doc = yaml.safe_load(Path(res.manifest).read_text())
    assert set(_params(doc).values()) >= {"/bundles/v3"}
    assert json.loads((tmp_path / "deploy" / "current.json").read_text())["version"] == "3"
    assert D.current_local()["model_uris"]["hybrid-a"] == "/bundles/v3"


def test_cluster_target_runs_kubectl_apply(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "kubectl.log"
    fake = bin_dir / "kubectl"
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\n[ \"$1\" = config ] && echo kind-test\n"
                    "[ \"$1\" = apply ] && echo seldondeployment/smartreco configured\nexit 0\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    res = D.deploy({"hybrid": "models:/smartreco-hybrid/4"}, version="4", target="auto", namespace="reco",
                   out_dir=tmp_path / "out")
    assert res.target == "cluster" and res.applied and "configured" in res.message
    assert f"apply -f {tmp_path / 'out' / 'seldondeployment.yaml'} -n reco" in log.read_text()


def test_failing_kubectl_is_a_one_line_error(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "kubectl"
    fake.write_text("#!/bin/sh\necho 'error: no cluster' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(D.DeployError, match="kubectl apply failed"):
        D.deploy({"cf": "x"}, target="cluster", out_dir=tmp_path / "o")
    with pytest.raises(D.DeployError, match="target"):
        D.deploy({"cf": "x"}, target="moon")
