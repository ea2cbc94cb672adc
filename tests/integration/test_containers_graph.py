"""`serve --containers`: every node of the SeldonDeployment as a container of the serving image behind the
local executor (REST + gRPC through the full graph); `docker kill` of the content-based node degrades the
answers and `docker start` restores them; Ctrl-C, SIGTERM (also during start-up) and a dead executor's
leftovers leave no container behind.

The nodes load the tests' fake bundle (tests/integration/graph_fake_bundle.py, mounted read-only like any
PYTHONPATH folder), so this checks the containers and the launcher, not the models. ~1-2 min here."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("seldon_core")  # serving venv only (the executor's gRPC front needs its protos)

import grpc  # noqa: E402
from google.protobuf import json_format  # noqa: E402
from graph_fake_bundle import write  # noqa: E402
from seldon_core.proto import prediction_pb2, prediction_pb2_grpc  # noqa: E402

from inference_graph.executor.containers import KIND, LABEL_KIND, LABEL_OWNER, LABEL_RUN, remove_leftovers  # noqa: E402
from smartreco.images import SERVING_IMAGE  # noqa: E402
from smartreco.ports import free_port

pytestmark = [pytest.mark.serving, pytest.mark.integration, pytest.mark.container, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
NODES = ("feature-transformer", "ab-router", "hybrid-a", "cf-a", "cb-a", "hybrid-b", "cf-b", "cb-b")


def _docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def _run_containers(label: str) -> list[str]:
    return _docker("ps", "-aq", "--filter", f"label={label}").stdout.split()


@pytest.fixture(scope="module")
def serving_image(smartreco_images) -> str:
    """The serving image, from the session's build (tests/conftest.py: built when missing or stale)."""
    assert smartreco_images["serving"]["tag"] == SERVING_IMAGE
    assert _docker("image", "inspect", SERVING_IMAGE).returncode == 0, f"{SERVING_IMAGE} missing"
    return SERVING_IMAGE


class Executor:
    """`python -m inference_graph.executor --containers` as a child process (what `smartreco serve` execs)."""

    def __init__(self, tmp: Path, extra: tuple[str, ...] = ()) -> None:
        self.tmp = tmp
        self.port, self.grpc_port = free_port(), free_port()
        self.ready = tmp / f"ready-{self.port}.json"
        bundle = write(tmp / "bundle")
        store = tmp / "arms"
        store.mkdir(exist_ok=True)
        store.chmod(0o777)  # the router's SQLite arm store: written by the node's non-root user
        overrides = {"*": {"model_uri": str(bundle)},
                     # every user through arm 0 (hybrid-a, cf-a, cb-a): the kill test knows which CB serves
                     "ab-router": {"store": str(store / "arms.sqlite"), "mode": "fixed", "ratio_a": 1.0}}
        env = {**os.environ, "SMARTRECO_RUNS": str(tmp / "runs"),
               "SMARTRECO_BUNDLE_LOADER": "graph_fake_bundle:load",
               "SMARTRECO_FEATURE_READER": "graph_fake_bundle:read_features",
               "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "inference_graph.executor", "--containers", "--node-ports", "free",
             "--port", str(self.port), "--grpc-port", str(self.grpc_port), "--set", json.dumps(overrides),
             "--cache", "off", "--feedback-log", "off", "--no-push", "--timeout-ms", "5000",
             "--log-dir", str(tmp / "logs"), "--ready-file", str(self.ready), *extra],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )

    def wait_ready(self, timeout: float = 240) -> dict:
        deadline = time.monotonic() + timeout
        while not self.ready.exists():
            if self.proc.poll() is not None:
                pytest.fail(f"executor exited {self.proc.returncode}:\n{self.proc.stdout.read()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail("executor with node containers not ready in time")
            time.sleep(0.25)
        return json.loads(self.ready.read_text())

    def post(self, body: dict) -> tuple[int, dict]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/api/v1.0/predictions",
                                     data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def grpc(self, body: dict) -> dict:
        with grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}") as ch:
            msg = json_format.ParseDict(body, prediction_pb2.SeldonMessage())
            return json_format.MessageToDict(prediction_pb2_grpc.SeldonStub(ch).Predict(msg, timeout=30))

    def signal_and_wait(self, sig: int, timeout: float = 90) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@pytest.fixture(scope="module")
def tmp_dir():
    # not pytest's tmp_path: its parents are mode 700, and the nodes run as another (non-root) user
    tmp = Path(tempfile.mkdtemp(prefix="smartreco-ctr-", dir="/tmp"))
    tmp.chmod(0o755)
    yield tmp
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def graph(serving_image, tmp_dir):
    ex = Executor(tmp_dir)
    try:
        ex.info = ex.wait_ready()
        ex.run_label = f"{LABEL_OWNER}={ex.proc.pid}"
        yield ex
    finally:
        if ex.proc.poll() is None:
            code = ex.signal_and_wait(signal.SIGINT)  # Ctrl-C
            assert code in (0, 130), code
        left = _run_containers(f"{LABEL_OWNER}={ex.proc.pid}")
        _docker("rm", "-f", *left) if left else None
        assert not left, "serve left node containers behind after Ctrl-C"


def _check_answer(body: dict, n: int = 10) -> None:
    recs = body["jsonData"]["recommendations"]
    assert len(recs) == n and all(r["explanation"] for r in recs)
    assert body["meta"]["routing"]["ab-router"] == 0


def test_every_node_is_a_non_root_container_of_the_serving_image(graph, serving_image):
    assert graph.info["nodes_as"] == "containers" and set(graph.info["nodes"]) == set(NODES)
    ids = _run_containers(graph.run_label)
    assert len(ids) == len(NODES)
    fmt = '{{.Config.Image}} {{.Config.User}} {{.HostConfig.NetworkMode}} {{.HostConfig.ReadonlyRootfs}} ' \
          '{{index .Config.Labels "org.smartreco.node"}} {{.State.Status}}'
    rows = [line.split() for line in _docker("inspect", "-f", fmt, *ids).stdout.splitlines()]
    assert {r[4] for r in rows} == set(NODES)
    for image, user, network, read_only, _node, state in rows:
        assert image == serving_image and network == "host" and state == "running"
        assert user == "10001:10001" and read_only == "true"  # runAsUser + readOnlyRootFilesystem of the manifest
    env = _docker("inspect", "-f", "{{json .Config.Env}}", graph.info["nodes"]["cb-a"]["container"]).stdout
    assert "MODEL_NAME=inference_graph.cb_model.CBModel" in env  # the class from the manifest's env


@pytest.mark.parametrize("request_doc", [{"user_id": "7"}, {"user_id": "brand-new-user", "exclude_items": ["1"]}])
def test_rest_and_grpc_recommend_through_the_container_graph(graph, request_doc):
    doc = {"jsonData": {**request_doc, "num_recommendations": 10}}
    code, rest = graph.post(doc)
    assert code == 200, rest
    via_grpc = graph.grpc(doc)
    for body in (rest, via_grpc):
        _check_answer(body)
        assert "degraded" not in body["meta"].get("tags", {}), body["meta"]
        served = {r["item_id"] for r in body["jsonData"]["recommendations"]}
        assert not set(request_doc.get("exclude_items", [])) & served


def test_docker_kill_of_cb_degrades_and_docker_start_restores(graph):
    cb = graph.info["nodes"]["cb-a"]["container"]
    assert _docker("kill", cb).returncode == 0
    for user in ("5", "6", "7"):
        code, body = graph.post({"jsonData": {"user_id": user}})
        assert code == 200, body
        _check_answer(body)
        assert body["meta"]["tags"]["degraded"] == "cb-a" and body["jsonData"]["degraded"] == ["cb"]
    via_grpc = graph.grpc({"jsonData": {"user_id": "7"}})
    assert via_grpc["meta"]["tags"]["degraded"] == "cb-a" and len(via_grpc["jsonData"]["recommendations"]) == 10
    assert _docker("start", cb).returncode == 0  # same container, same ports
    deadline, body = time.monotonic() + 90, {}
    while time.monotonic() < deadline:
        code, body = graph.post({"jsonData": {"user_id": "7"}})
        if code == 200 and "degraded" not in body["meta"].get("tags", {}):
            break
        time.sleep(0.5)
    _check_answer(body)
    assert "degraded" not in body["meta"].get("tags", {}) and not body["jsonData"].get("degraded"), body["meta"]


def test_sigterm_during_start_up_removes_every_container(serving_image, tmp_dir):
    ex = Executor(tmp_dir)
    label = f"{LABEL_OWNER}={ex.proc.pid}"
    deadline = time.monotonic() + 120
    while not _run_containers(label) and time.monotonic() < deadline and ex.proc.poll() is None:
        time.sleep(0.1)
    assert _run_containers(label), "no node container appeared"
    code = ex.signal_and_wait(signal.SIGTERM)
    left = _run_containers(label)
    if left:
        _docker("rm", "-f", *left)
    assert not left and code == 0, ex.proc.stdout.read()[-2000:]
    assert not ex.ready.exists()  # it never claimed to serve


def test_leftovers_of_a_dead_executor_are_removed_at_start(serving_image):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs: its containers are leftovers
    run = f"test-{os.getpid()}"
    name = f"smartreco-{run}-leftover"
    made = _docker("create", "--name", name, "--label", f"{LABEL_KIND}={KIND}", "--label", f"{LABEL_RUN}={run}",
                   "--label", f"{LABEL_OWNER}={dead.pid}", "--network", "none", serving_image)
    assert made.returncode == 0, made.stderr
    try:
        assert _run_containers(f"{LABEL_RUN}={run}")
        removed = remove_leftovers()
        assert name in removed
        assert not _run_containers(f"{LABEL_RUN}={run}")
    finally:
        _docker("rm", "-f", made.stdout.strip())
