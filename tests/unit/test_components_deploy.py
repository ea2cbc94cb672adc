"""Deploy: the SeldonDeployment is rendered with the new model URIs; local target records, cluster changes only the live
object's model URIs."""

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
    doc = D.render_seldon(
        {"hybrid": "models:/smartreco-hybrid/7", "cf": "models:/smartreco-cf/7", "cb": "models:/smartreco-cb/7"},
        version="7",
    )
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


def _fake_kubectl(tmp_path: Path, live: dict | None) -> tuple[Path, Path]:
    """A kubectl on PATH that logs its arguments, answers ``get`` with ``live`` (None: NotFound) and saves what
    ``replace -f -`` receives."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log, live_file, replaced = tmp_path / "kubectl.log", tmp_path / "live.json", tmp_path / "replaced.json"
    if live is not None:
        live_file.write_text(json.dumps(live))
    fake = bin_dir / "kubectl"
    fake.write_text(
        f'#!/bin/sh\necho "$@" >> {log}\n'
        'case "$1" in\n'
        "  config) echo kind-test ;;\n"
        f"  get) [ -f {live_file} ] || {{ echo 'Error from server (NotFound)' >&2; exit 1; }}; cat {live_file} ;;\n"
        f"  replace) cat > {replaced}; echo seldondeployment/smartreco replaced ;;\n"
        "esac\nexit 0\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return bin_dir, replaced


def test_cluster_target_changes_only_the_model_uris_of_the_live_object(tmp_path, monkeypatch):
    # the live object as an overlay made it: another registry, more replicas, a status the server owns
    live = D.render_seldon({}, image="registry.example.com/smartreco/smartreco-serving:0.1.0")
    live["spec"]["predictors"][0]["replicas"] = 3
    live["metadata"]["resourceVersion"] = "42"
    live["status"] = {"state": "Available"}
    bin_dir, replaced = _fake_kubectl(tmp_path, live)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    res = D.deploy(
        {"hybrid": "models:/smartreco-hybrid/4"}, version="4", target="auto", namespace="reco", out_dir=tmp_path / "out"
    )
    assert res.target == "cluster" and res.applied and "replaced" in res.message
    calls = (tmp_path / "kubectl.log").read_text()
    assert "get seldondeployment smartreco -o json -n reco" in calls and "replace -f - -n reco" in calls
    sent = json.loads(replaced.read_text())
    assert _params(sent)["hybrid-a"] == "models:/smartreco-hybrid/4"
    expected = {k: v for k, v in live.items() if k != "status"}
    sent_uris, expected_uris = _params(sent), _params(expected)
    assert {k for k in sent_uris if sent_uris[k] != expected_uris[k]} == {"hybrid-a"}
    # everything else is the live object's: registry, replicas, resourceVersion (optimistic concurrency)
    assert sent["spec"]["predictors"][0]["replicas"] == 3 and sent["metadata"]["resourceVersion"] == "42"
    images = {c["image"] for cs in sent["spec"]["predictors"][0]["componentSpecs"] for c in cs["spec"]["containers"]}
    assert images == {"registry.example.com/smartreco/smartreco-serving:0.1.0"}
    assert "status" not in sent


def test_cluster_target_without_a_deployed_graph_says_to_apply_an_overlay(tmp_path, monkeypatch):
    bin_dir, _ = _fake_kubectl(tmp_path, None)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(D.DeployError, match="apply an overlay first"):
        D.deploy({"cf": "x"}, target="cluster", out_dir=tmp_path / "o")


def test_failing_kubectl_is_a_one_line_error(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "kubectl"
    fake.write_text("#!/bin/sh\necho 'error: no cluster' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(D.DeployError, match="kubectl get seldondeployment smartreco failed"):
        D.deploy({"cf": "x"}, target="cluster", out_dir=tmp_path / "o")
    with pytest.raises(D.DeployError, match="target"):
        D.deploy({"cf": "x"}, target="moon")


# ----------------------------------------------------------------------------------- target: rehearsal
def _rehearsal_state(name: str) -> list[dict]:
    """A rehearsal of the local overlay as `rehearse up` leaves its state (objects, Secrets), without an engine."""
    from smartreco.rehearse import render, secrets, session

    objects = render.load_objects(render.render("local"))
    made = secrets.generate(secrets.referenced(objects))
    folder = session.state_dir(name)
    secrets.write(folder, made)
    _, patched = session.prepare(objects, name=name, replicas=None, models_patch=False, made_secrets=made)
    (folder / session.OBJECTS_FILE).write_text(
        json.dumps({"overlay": "local", "objects": patched, "rendered": objects})
    )
    return objects


def test_rehearsal_target_rolls_the_rehearsal_to_the_deployed_versions(manifest_tools, tmp_path, monkeypatch):  # noqa: ARG001
    """deploy_target=rehearsal is `rehearse apply` on the running rehearsal's SeldonDeployment with only the arm's
    model URIs changed: new predictor pods (model-fetch from the rehearsal's MLflow) start, become ready, and only
    then is the old pod removed; the applied object is the rehearsal's live one for the next deploy."""
    from smartreco.rehearse import runner, session

    monkeypatch.setenv("SMARTRECO_REHEARSAL_DIR", str(tmp_path / "state"))
    _rehearsal_state("rh")
    events: list[tuple[str, object]] = []

    def start_more(self):  # the engine's side, recorded
        events.append(("start", self.plan))

    monkeypatch.setattr(runner.Rehearsal, "start_more", start_more)
    monkeypatch.setattr(runner.Rehearsal, "wait_ready", lambda self, timeout_s: events.append(("ready", 0)) or 12.5)
    monkeypatch.setattr(runner, "workload_pods", lambda name, workload: ["smartreco-default-0"])
    monkeypatch.setattr(runner, "terminate_pod", lambda name, pod, entry: events.append(("remove", pod)) or 0.0)

    uris = {k: f"models:/smartreco-{k}/4" for k in D.KINDS}
    res = D.deploy(uris, version="4", target="rehearsal", rehearsal="rh", out_dir=tmp_path / "out")
    assert res.target == "rehearsal" and res.applied and "12.5 s" in res.message
    assert res.model_uris == {f"{k}-a": f"models:/smartreco-{k}/4" for k in D.KINDS}  # versions, as on a cluster
    assert [e[0] for e in events] == ["start", "ready", "remove"] and events[2][1] == "smartreco-default-0"
    plan = events[0][1]
    (pod,) = plan.pods
    assert pod.name.startswith("smartreco-default-g") and [c.name for c in pod.init_containers] == ["model-fetch"]
    fetch = pod.init_containers[0]
    assert fetch.env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    hybrid = next(c for c in pod.containers if c.name == "hybrid-a")
    params = {p["name"]: p["value"] for p in json.loads(hybrid.env["PREDICTIVE_UNIT_PARAMETERS"])}
    assert params["model_uri"] == "models:/smartreco-hybrid/4"
    # model-fetch fills the alias folders and records their versions; the node maps the version URI to one of them
    assert "models:/smartreco-hybrid@champion" in json.loads(hybrid.env["SMARTRECO_MODEL_URIS"])
    sent = yaml.safe_load(Path(res.manifest).read_text())
    assert sent["metadata"]["annotations"][f"{D.VERSION_ANNOTATION}.champion"] == "4"
    assert _params(sent)["hybrid-b"] == "models:/smartreco-hybrid@challenger"  # the other arm untouched
    live = session.live_seldon("rh")
    assert live["metadata"]["annotations"][f"{D.VERSION_ANNOTATION}.champion"] == "4"
    volumes = [v["name"] for v in live["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["volumes"]]
    assert "rehearsal-object-store" not in volumes  # the live object is the rendered one, patches apart


def test_rehearsal_target_needs_registry_uris_and_a_rehearsal(manifest_tools, tmp_path, monkeypatch):  # noqa: ARG001
    from smartreco.rehearse import runner

    monkeypatch.setenv("SMARTRECO_REHEARSAL_DIR", str(tmp_path / "state"))
    with pytest.raises(runner.RehearsalError, match="rehearse up"):
        D.deploy({"cf": "models:/smartreco-cf/1"}, target="rehearsal", rehearsal="none", out_dir=tmp_path / "o")
    _rehearsal_state("rh")
    with pytest.raises(D.DeployError, match="not a registry URI"):
        D.deploy({"cf": "/bundles/v3"}, target="rehearsal", rehearsal="rh", out_dir=tmp_path / "o")
