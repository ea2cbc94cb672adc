"""The graph's node classes under the Apache-2.0 wrapper: seldon-core 1.17.1 (Python 3.11, its own venv
``.venv-seldon-apache``) instead of the default BSL-licensed 1.19.0. The executor (this serving venv)
launches every node with that venv's ``seldon-core-microservice`` because ``SMARTRECO_SELDON=apache``.

Without the venv the module skips on a developer machine; with CI=true it fails (CI builds the venv).
"""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("seldon_core")  # serving venv only (the client protos; collected but deselected elsewhere)

import grpc  # noqa: E402
from google.protobuf import json_format  # noqa: E402
from graph_fake_bundle import GraphThread  # noqa: E402
from seldon_core.proto import prediction_pb2, prediction_pb2_grpc  # noqa: E402

from inference_graph.executor import processes  # noqa: E402
from smartreco.experiments.bandits import SQLiteArmStore  # noqa: E402
from smartreco.paths import project_root  # noqa: E402

pytestmark = [pytest.mark.serving, pytest.mark.integration]

APACHE = project_root() / processes.APACHE_VENV
APACHE_BIN = APACHE / "bin" / "seldon-core-microservice"


@pytest.fixture(scope="module")
def apache_venv() -> Path:
    if not APACHE_BIN.exists():
        why = f"{APACHE_BIN} absent: build it with `bash scripts/setup.sh seldon-apache`"
        if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true: the Apache-2.0 Seldon wrapper must be tested, but {why}")
        pytest.skip(why)
    return APACHE


@pytest.fixture(scope="module")
def graph(apache_venv, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("apache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(processes.SELDON_ENV, "apache")
        mp.delenv(processes.SELDON_VENV_ENV, raising=False)
        g = GraphThread(tmp, in_process=False, mode="thompson", timeout_ms=5000)
        g.tmp = tmp
        try:
            yield g
        finally:
            procs = list(g.graph.processes.procs.values())
            with ThreadPoolExecutor(len(procs) or 1) as pool:  # each tree takes ~2 s to stop: not one by one
                list(pool.map(lambda p: p.stop(), procs))
            g.stop()
    assert procs and not any(p.alive() for p in procs)


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _post(url: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _grpc(target: str, method: str, doc: dict) -> dict:
    with grpc.insecure_channel(target) as ch:
        msg = json_format.ParseDict(doc, prediction_pb2.SeldonMessage())
        stub = prediction_pb2_grpc.RouterStub(ch) if method == "Route" else prediction_pb2_grpc.SeldonStub(ch)
        return json_format.MessageToDict(getattr(stub, method)(msg, timeout=30))


def _arm(body: dict) -> float:
    """First number of a route answer: ndarray or tensor, as the executor reads it."""
    data = body["data"]
    values = data["ndarray"] if "ndarray" in data else data["tensor"]["values"]
    while isinstance(values, list):
        values = values[0]
    return values


def test_apache_venv_holds_seldon_core_1_17_1_on_python_3_11(apache_venv):
    probe = (
        "import sys, json, importlib.metadata as m, seldon_core.version as v;"
        "print(json.dumps([v.__version__, m.version('seldon-core'), m.metadata('seldon-core')['License'],"
        " sys.version_info[:2], m.version('protobuf')]))"
    )
    out = subprocess.run([str(apache_venv / "bin" / "python"), "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    version, dist_version, licence, py, protobuf = json.loads(out.stdout)
    assert version == dist_version == "1.17.1"
    assert "Apache" in licence
    assert py == [3, 11] and protobuf.startswith("3.20")


def test_every_node_process_runs_the_apache_wrapper(graph, apache_venv):
    site = str(apache_venv.resolve() / "lib" / "python3.11" / "site-packages")
    procs = graph.graph.processes.procs
    assert set(procs) >= {"feature-transformer", "ab-router", "cf-a", "cb-a", "hybrid-a", "cf-b", "cb-b", "hybrid-b"}
    for name, p in procs.items():
        argv = Path(f"/proc/{p.proc.pid}/cmdline").read_bytes().split(b"\0")
        assert str(APACHE_BIN).encode() in argv, (name, argv)
        # the running process really loaded its compiled modules (numpy, grpc) from the 1.17.1 venv
        maps = Path(f"/proc/{p.proc.pid}/maps").read_text()
        assert site in maps and "site-packages/grpc/" in maps, name
        assert _get(p.url + "/health/ping")[0] == 200


def test_router_and_model_nodes_over_rest_and_grpc(graph):
    router, cf = graph.graph.processes.procs["ab-router"], graph.graph.processes.procs["cf-a"]
    code, routed = _post(router.url + "/route", {"jsonData": {"request": {"user_id": "7"}}})
    assert code == 200, routed
    assert _arm(routed) in (0, 1)
    via_grpc = _grpc(f"127.0.0.1:{router.grpc_port}", "Route", {"jsonData": {"request": {"user_id": "7"}}})
    assert _arm(via_grpc) in (0, 1)

    payload = {"jsonData": {"request": {"user_id": "7", "num_recommendations": 10}, "history": ["10", "11"]}}
    code, rest = _post(cf.url + "/api/v1.0/predictions", payload)
    assert code == 200, rest
    out = _grpc(f"127.0.0.1:{cf.grpc_port}", "Predict", payload)
    for body in (rest, out):
        data = body["jsonData"]
        assert data["source"] == "cf" and data["model_version"] == "fake-1"
        assert len(data["candidates"]) == 200 and not {"10", "11"} & set(data["candidates"])
    assert rest["jsonData"]["candidates"] == pytest.approx(out["jsonData"]["candidates"])
    assert rest["meta"]["tags"]["cf_cold_start"] == "no"  # tags() reached the wrapper's meta

    code, bad = _post(cf.url + "/api/v1.0/predictions", {"jsonData": {"user_id": "7"}})
    assert code == 400 and bad["status"]["info"].startswith("jsonData.request"), bad


def test_whole_graph_answers_and_learns_from_feedback(graph):
    body = {"jsonData": {"user_id": "7", "num_recommendations": 10}}
    code, rest = graph.post("/api/v1.0/predictions", body)
    assert code == 200, rest
    with grpc.insecure_channel(graph.grpc_target) as ch:
        msg = json_format.ParseDict(body, prediction_pb2.SeldonMessage())
        via_grpc = json_format.MessageToDict(prediction_pb2_grpc.SeldonStub(ch).Predict(msg, timeout=30))
    for out in (rest, via_grpc):
        assert len(out["jsonData"]["recommendations"]) == 10
        assert out["meta"]["routing"]["ab-router"] in (0, 1)

    store = SQLiteArmStore(graph.tmp / "arms.sqlite", "smartreco-ab")
    arm = ["champion", "challenger"][rest["meta"]["routing"]["ab-router"]]
    before = store.stats([arm])[arm]
    truth = {"item_id": "9", "interaction_type": "click"}
    feedback = {"request": body, "response": rest, "reward": 1.0, "truth": truth}
    code, out = graph.post("/api/v1.0/feedback", feedback)
    assert code == 200 and "feedback_errors" not in out["meta"].get("tags", {}), out
    after = store.stats([arm])[arm]  # send_feedback(routing=...) ran in the 1.17.1 router process
    assert after.pulls == before.pulls + 1 and after.reward_sum == before.reward_sum + 1.0


def test_wrapper_choice_errors_are_clear(monkeypatch, tmp_path):
    monkeypatch.setenv(processes.SELDON_ENV, "apach")
    with pytest.raises(processes.NodeStartError, match="SMARTRECO_SELDON: must be 'default' or 'apache'"):
        processes.microservice_bin()
    monkeypatch.setenv(processes.SELDON_ENV, "default")
    monkeypatch.setenv(processes.SELDON_VENV_ENV, str(tmp_path))
    with pytest.raises(processes.NodeStartError, match="setup.sh seldon-apache"):
        processes.microservice_bin()
    monkeypatch.delenv(processes.SELDON_VENV_ENV)
    assert processes.microservice_bin() == str(Path(sys.executable).parent / "seldon-core-microservice")
