"""`smartreco rehearse up --overlay local`: the rendered local overlay runs as containers on the engine (Redis and
PostgreSQL from the Debian-package images, Feast, the event service, the web app and the graph pod with
the local executor standing in for Seldon's), and answers through the Service names: a REST and a gRPC
prediction with explanations, a feedback, the request log and the feedback in Redis's event stream, `smartreco
ab report` over it; `rehearse down` leaves no container, network or volume.

The graph loads a tiny real hybrid bundle (synthetic data, fitted here) through the `--models` rehearsal patch:
MLflow is left out (`--skip mlflow`: the pipeline image has no PostgreSQL driver, SECURITY.md O8), so no model
is registered anywhere and model-fetch is not rehearsed. About 2 min of pod start-up at load ~17 here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from smartreco.feedback.dataset import iter_log
from smartreco.feedback.records import FEEDBACK, IMPRESSION
from smartreco.rehearse import runner
from smartreco.rehearse.docker_args import LABEL

pytestmark = [pytest.mark.integration, pytest.mark.container, pytest.mark.slow, pytest.mark.timeout(2400)]

ROOT = Path(__file__).resolve().parents[2]
NAME = f"smartreco-rehearsal-test-{os.getpid()}"
SLOTS = ("hybrid-champion", "cf-champion", "cb-champion", "hybrid-challenger", "cf-challenger", "cb-challenger")


def _tiny_bundle(folder: Path) -> Path:
    from smartreco.data.synthetic import generate_in_memory
    from smartreco.evaluation.split import temporal_split
    from smartreco.models.base import TrainData
    from smartreco.models.hybrid import HybridConfig, HybridRanker

    data = generate_in_memory(n_users=80, n_items=150, n_interactions=4000, seed=3)
    train = TrainData.from_interactions(temporal_split(data.interactions).train, data.items)
    cfg = HybridConfig(
        n_factors=8,
        nbr_k=20,
        k_cf=30,
        k_cooc=30,
        k_cb=10,
        k_pop=10,
        n_estimators=40,
        min_data_in_leaf=5,
        cb_dims=32,
        cf_backend="svd",
        content="hashed",
    )
    HybridRanker(cfg, progress=False).fit(train).save_bundle(folder)
    return folder


def _cli(*args: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smartreco", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def _post(url: str, body: dict) -> dict:
    # the graph's Service name as Host (the local executor answers loopback and its Service's names only)
    headers = {"Content-Type": "application/json", "Host": "smartreco-default"}
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status == 200
        return json.loads(r.read())


_GRPC = """
import json, sys, grpc
from google.protobuf import json_format
from seldon_core.proto import prediction_pb2, prediction_pb2_grpc
with grpc.insecure_channel("smartreco-default.smartreco.svc.cluster.local:5001") as ch:
    msg = json_format.ParseDict(json.loads(sys.argv[1]), prediction_pb2.SeldonMessage())
    print(json.dumps(json_format.MessageToDict(prediction_pb2_grpc.SeldonStub(ch).Predict(msg, timeout=30))))
"""


@pytest.fixture(scope="module")
def rehearsal(smartreco_images, manifest_tools, tmp_path_factory):  # noqa: ARG001 - images and kubectl must exist
    tmp = tmp_path_factory.mktemp("rehearse")
    bundle = _tiny_bundle(tmp / "bundle")
    models = tmp / "models"
    for slot in SLOTS:
        shutil.copytree(bundle, models / slot)
    env = {**os.environ, "SMARTRECO_REHEARSAL_DIR": str(tmp / "state")}
    up = _cli(
        "rehearse",
        "up",
        "--overlay",
        "local",
        "--models",
        str(models),
        "--name",
        NAME,
        "--skip",
        "mlflow",
        "--json",
        "--timeout",
        "1200",
        env=env,
        timeout=1800,
    )
    try:
        assert up.returncode == 0, f"rehearse up failed:\n{up.stderr[-6000:]}"
        yield json.loads(up.stdout), env, tmp
    finally:
        down = _cli("rehearse", "down", "--name", NAME, env=env, timeout=600)
        assert down.returncode == 0, down.stderr[-2000:]
        left = runner.leftovers(NAME)
        assert left == {"containers": [], "networks": [], "volumes": []}, left


def test_local_overlay_serves_through_its_services(rehearsal) -> None:
    out, env, tmp = rehearsal
    # every workload of the overlay ran, each container in the state the kubelet would report
    assert set(out["workloads"]) == {
        "Deployment/feast-feature-server",
        "Deployment/smartreco-events",
        "Deployment/smartreco-web",
        "StatefulSet/redis",
        "StatefulSet/postgres",
        "SeldonDeployment/smartreco",
    }
    for pods in out["workloads"].values():
        for pod in pods:
            # running; a restart or two while a dependency came up is what the kubelet does too
            assert all(
                c["state"] == "running" and c["restarts"] < runner.CRASH_LOOP_RESTARTS for c in pod["containers"]
            ), pod
    assert any(o["object"].startswith("CronJob/") for o in out["not_rehearsed"])
    assert stat_mode(Path(out["secrets_file"])) == 0o600
    assert not Path(out["secrets_file"]).resolve().is_relative_to(ROOT)

    # REST through the Service (the pod's IP, as the host reaches it) with explanations
    user = "u18"
    ask = {"jsonData": {"user_id": user, "num_recommendations": 5}}
    answer = _post(f"{out['endpoints']['graph_rest']}/api/v1.0/predictions", ask)
    recs = answer["jsonData"]["recommendations"]
    assert len(recs) == 5 and all(r.get("explanation") for r in recs), recs
    assert "ab-router" in answer["meta"]["routing"]

    # gRPC through the Service's cluster DNS name, from inside the graph pod (the serving image has the protos)
    executor = f"{NAME}-smartreco-default-0-seldon-container-engine"
    proc = subprocess.run(
        ["docker", "exec", executor, "python", "-c", _GRPC, json.dumps(ask)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(json.loads(proc.stdout)["jsonData"]["recommendations"]) == 5

    # feedback along the recorded route: durable in the event service's Redis stream
    fid = f"fb-{uuid.uuid4().hex[:10]}"
    item = recs[0]["item_id"]
    _post(
        f"{out['endpoints']['graph_rest']}/api/v1.0/feedback",
        {
            "request": ask,
            "response": answer,
            "reward": 1.0,
            "truth": {"jsonData": {"item_id": item, "interaction_type": "click", "feedback_id": fid}},
        },
    )
    secrets = json.loads(Path(out["secrets_file"]).read_text())
    # the shared state's URL as the pods have it (redis:6379), with the Redis pod's address the host reaches
    state_url = secrets["smartreco-state"]["SMARTRECO_STATE"].replace("@redis:6379", "@" + out["endpoints"]["redis"])
    kinds: set[str] = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the request logger is asynchronous (as Seldon's): bounded poll
        records = list(iter_log(state_url))
        kinds = {r["kind"] for r in records}
        if {FEEDBACK, IMPRESSION} <= kinds:
            break
        time.sleep(0.5)
    assert {FEEDBACK, IMPRESSION} <= kinds, f"event stream holds {kinds}"
    assert any(item in (r.get("items") or []) for r in records if r["kind"] == IMPRESSION)
    # both arms of the fixed split get traffic and feedback, so the A/B report has two variants to compare
    arms = set()
    for u in range(1, 25):
        req = {"jsonData": {"user_id": f"u{u}", "num_recommendations": 5}}
        got = _post(f"{out['endpoints']['graph_rest']}/api/v1.0/predictions", req)
        arms.add(got["meta"]["routing"]["ab-router"])
        truth = {
            "item_id": got["jsonData"]["recommendations"][0]["item_id"],
            "interaction_type": "click",
            "feedback_id": f"fb-{uuid.uuid4().hex[:10]}",
        }
        _post(
            f"{out['endpoints']['graph_rest']}/api/v1.0/feedback",
            {"request": req, "response": got, "reward": 1.0, "truth": {"jsonData": truth}},
        )
    assert arms == {0, 1}
    report = _cli("ab", "report", "--logs", state_url, "--out", str(tmp / "ab"), env=env, timeout=300)
    assert report.returncode == 0, report.stderr[-2000:]


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_everything_carries_the_rehearsal_label(rehearsal) -> None:
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={LABEL}={NAME}"], capture_output=True, text=True
    ).stdout.split()
    out, _, _ = rehearsal
    expected = sum(len(p["containers"]) + 1 for pods in out["workloads"].values() for p in pods)
    assert len(ids) >= expected  # + exited init containers
