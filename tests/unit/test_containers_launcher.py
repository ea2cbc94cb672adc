"""The container launcher's translation of the SeldonDeployment into `docker run` arguments, and the docker
runner's step naming/mounts, without an engine (`docker` itself is replaced by a recorder)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from inference_graph.executor import containers as C
from inference_graph.executor.graph import load_graph
from pipelines import runner as R

pytestmark = [pytest.mark.unit]


@pytest.fixture
def graph():
    return load_graph()  # the repo's manifest


class Recorder:
    """Stands in for the docker CLI: remembers every call, answers `run` with an id."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, args, timeout=60, check=True):
        import subprocess

        self.calls.append(list(args))
        out = "cid-" + str(len(self.calls)) if args[0] == "run" else ""
        if args[:2] == ["image", "inspect"]:
            out = 'null ["/bin/sh","-c","exec seldon-core-microservice \\"$MODEL_NAME\\""]'
        return subprocess.CompletedProcess(["docker", *args], 0, out, "")


def test_resources_and_units_follow_kubernetes():
    assert C._cpus("500m") == "0.5" and C._cpus("1") == "1"
    assert C._memory("512Mi") == str(512 * 2**20) and C._memory("2Gi") == str(2 * 2**30)


def test_security_and_resources_come_from_the_manifest(graph):
    cb = graph.node("cb-a")
    args = C.ContainerGroup._security_args(cb, 10001, 10001)
    assert args[:2] == ["--security-opt", "no-new-privileges"] and args[2:4] == ["--cap-drop", "ALL"]
    assert "--read-only" in args
    tmpfs = [args[i + 1] for i, a in enumerate(args) if a == "--tmpfs"]
    assert any(t.startswith("/home/smartreco:rw,uid=10001") for t in tmpfs)
    assert any(t.startswith("/models:ro") for t in tmpfs)  # a read-only emptyDir stays read-only
    assert C.ContainerGroup._resource_args(cb) == ["--cpus", "1", "--memory", str(2 * 2**30)]
    assert C._manifest_ports(graph.node("feature-transformer")) == (9000, 9500, 6000)


def test_mounts_are_host_paths_read_only_except_the_store_and_never_the_checkout(graph, tmp_path):
    node = graph.node("ab-router")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    extra = tmp_path / "lib"
    extra.mkdir()
    node.parameters = [{"name": "model_uri", "type": "STRING", "value": "models:/x@champion"},
                       {"name": "store", "type": "STRING", "value": str(tmp_path / "arms" / "arms.sqlite")},
                       {"name": "mode", "type": "STRING", "value": "fixed"},
                       {"name": "ratio_a", "type": "FLOAT", "value": "0.5"}]
    root = Path(C.__file__).resolve().parents[2]
    env = {"SMARTRECO_MODEL_URIS": json.dumps({"models:/x@champion": str(bundle)}),
           "PYTHONPATH": os.pathsep.join([str(root), str(extra)])}
    mounts = {m.path: (m.writable, m.files) for m in C.node_mounts(node, env)}
    assert mounts == {bundle: (False, ()), tmp_path / "arms": (True, (tmp_path / "arms" / "arms.sqlite",)),
                      extra: (False, ())}
    assert C.Mount(bundle).arg() == f"type=bind,source={bundle},target={bundle},readonly"


def test_run_arguments_name_label_user_ports_env(graph, tmp_path, monkeypatch):
    rec = Recorder()
    monkeypatch.setattr(C, "_docker", rec)
    monkeypatch.setattr(C, "_readable_problem", lambda *a: None)
    monkeypatch.setattr(C, "_writable_problem", lambda *a: None)
    monkeypatch.setattr(C, "_own_dedicated", lambda *a: None)
    monkeypatch.setenv("SMARTRECO_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("SMARTRECO_API_TOKEN", "secret")  # never forwarded to nodes
    monkeypatch.setenv("SMARTRECO_FEATURE_SERVER", "http://127.0.0.1:6566")
    group = C.ContainerGroup(graph.nodes(), tmp_path / "logs", {"GUNICORN_KEEPALIVE": "60"}, ports="free",
                             run_id="r1")
    c = group._run(graph.node("cb-a"), 40001, 40002, 40003)
    run = rec.calls[-1]
    assert run[:3] == ["run", "-d", "--name"] and c.name == "smartreco-r1-cb-a"
    assert c.container_id == f"cid-{len(rec.calls)}"
    assert "--network" in run and run[run.index("--network") + 1] == "host"
    labels = {run[i + 1] for i, a in enumerate(run) if a == "--label"}
    assert {"org.smartreco.run=r1", "org.smartreco.node=cb-a", f"org.smartreco.owner-pid={os.getpid()}"} <= labels
    env = dict(run[i + 1].split("=", 1) for i, a in enumerate(run) if a == "--env")
    assert env["MODEL_NAME"] == "inference_graph.cb_model.CBModel" and env["PREDICTIVE_UNIT_ID"] == "cb-a"
    assert (env["PREDICTIVE_UNIT_HTTP_SERVICE_PORT"], env["PREDICTIVE_UNIT_GRPC_SERVICE_PORT"]) == ("40001", "40002")
    assert env["SMARTRECO_FEATURE_SERVER"] == "http://127.0.0.1:6566" and "SMARTRECO_API_TOKEN" not in env
    assert env["GUNICORN_KEEPALIVE"] == "60" and json.loads(env["PREDICTIVE_UNIT_PARAMETERS"])
    expected_user = "10001:10001" if os.geteuid() == 0 else f"{os.geteuid()}:{os.getegid()}"
    assert run[run.index("--user") + 1] == expected_user
    assert group.urls() == {} and c.url == "http://127.0.0.1:40001"


def test_stop_removes_the_run_by_label_and_blocks_later_starts(graph, tmp_path, monkeypatch):
    rec = Recorder()
    monkeypatch.setattr(C, "_docker", rec)
    group = C.ContainerGroup(graph.nodes(), tmp_path, run_id="r2")
    group.procs["cb-a"] = C.NodeContainer(graph.node("cb-a"), 1, 2, 3, "smartreco-r2-cb-a", "cid", tmp_path / "cb.log")
    group.stop()  # e.g. from the signal handler while another thread still waits for health
    assert ["ps", "-aq", "--filter", "label=org.smartreco.run=r2"] in rec.calls
    assert ["logs", "cid"] in rec.calls  # each node's log is kept before removal
    with pytest.raises(C.ContainerError, match="stopped while"):
        group.wait(30.0)


def test_busy_manifest_ports_fall_back_to_free_ones(graph, monkeypatch):
    group = C.ContainerGroup(graph.nodes(), Path("/tmp"), run_id="r3")
    monkeypatch.setattr(C, "_port_free", lambda port: port != 9004)
    ports = group._choose_ports()
    assert ports["cb-a"] != (9004, 9504, 6004) and "busy" in group.notes[0]
    monkeypatch.setattr(C, "_port_free", lambda port: True)
    assert C.ContainerGroup(graph.nodes(), Path("/tmp"))._choose_ports()["cb-a"] == (9004, 9504, 6004)


def test_store_must_be_writable_by_the_node_user(tmp_path):
    other = os.geteuid() + 4242
    folder = tmp_path / "arms"
    folder.mkdir()
    folder.chmod(0o777)
    (folder / "someone-elses.sqlite").write_text("")  # not the node's file: not its business
    assert C._writable_problem(folder, other, other, (folder / "arms.sqlite",)) is None
    (folder / "arms.sqlite").write_text("")
    (folder / "arms.sqlite").chmod(0o644)
    assert "arms.sqlite (owner" in C._writable_problem(folder, other, other, (folder / "arms.sqlite",))
    folder.chmod(0o755)
    assert C._writable_problem(folder, other, other) == f"{folder} (owner {os.geteuid()}, mode drwxr-xr-x)"


def test_unreadable_folder_is_named():
    import shutil
    import tempfile

    top = Path(tempfile.mkdtemp(prefix="smartreco-unit-", dir="/tmp"))  # pytest's tmp_path parents are 0700
    try:
        top.chmod(0o755)
        (top / "open" / "bundle").mkdir(parents=True)
        (top / "private" / "bundle").mkdir(parents=True)
        (top / "private").chmod(0o700)
        other = os.geteuid() + 4242
        assert C._readable_problem(top / "open" / "bundle", uid=other) is None
        problem = C._readable_problem(top / "private" / "bundle", uid=other)
        assert problem == f"{top / 'private'} (mode drwx------)"
    finally:
        shutil.rmtree(top)


def test_pipeline_step_task_name_and_argument_mounts(tmp_path):
    cmd = ["sh", "-c", "...", "--executor_input",
           json.dumps({"outputs": {"outputFile": "/r/pipelines/smartreco-training-x/train-cf/executor_output.json"}}),
           "--function_to_execute", "train_cf"]
    assert R._task_of(cmd) == "train-cf" and R._task_of(["sh"]) == "step"
    runs, cache = tmp_path / "runs", tmp_path / "cache"
    (runs / "x").mkdir(parents=True)
    cache.mkdir()
    args = {"embedding_cache_dir": str(cache), "inside": str(runs / "x"), "source": "movielens", "n": 3}
    assert R._arg_mounts(args, runs) == [cache]
