"""The rehearsal's Services (issue #19): the kubelet's probe rules (readiness, liveness restart, restartPolicy
Always, terminating pods) decide each Service's endpoints, and the Service proxy sends connections only to those,
round-robin. No engine: the kubelet's docker calls and probes are replaced, the proxy runs against local sockets."""

from __future__ import annotations

import asyncio
import errno
import json
import socket
import threading
import time
from pathlib import Path

import pytest

from smartreco.ports import free_port
from smartreco.rehearse import kubelet, service_proxy
from smartreco.rehearse.translate import Hook, Probe

READY = Probe("http", 8000, "/ready", period_s=1.0, failure_threshold=2)
LIVE = Probe("tcp", 8000, initial_delay_s=5.0, period_s=1.0, failure_threshold=3)


def _pod(ip: str, containers: list[str], **extra) -> dict:
    return {
        "workload": "SeldonDeployment/smartreco",
        "labels": {"seldon-app": "svc"},
        "ip": ip,
        "grace_s": 7,
        "terminating": False,
        "containers": [
            {
                "name": c,
                "engine": f"rh-{ip}-{c}",
                "ports": {"http": 8000},
                "readiness": kubelet.probe_to_json(READY),
                "liveness": kubelet.probe_to_json(LIVE),
                "startup": None,
            }
            for c in containers
        ],
        **extra,
    }


SERVICE = {
    "name": "svc",
    "selector": {"seldon-app": "svc"},
    "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
}


class Engine:
    """What the kubelet sees of the engine: container states it can change, probe answers, docker calls made."""

    def __init__(self) -> None:
        self.state: dict[str, str] = {}
        self.started: dict[str, str] = {}
        self.probe_ok: dict[tuple[str, str], bool] = {}  # (container, probe kind) -> passes
        self.calls: list[list[str]] = []

    def inspect(self, names: list[str]) -> dict[str, tuple[str, str, int]]:
        return {n: (self.state.get(n, "running"), self.started.get(n, "2026-12-07T07:00:00.5Z"), 0) for n in names}

    def probe(self, probe: Probe, ip: str, container: str) -> bool:  # noqa: ARG002 - the probe's kind: http/tcp
        return self.probe_ok.get((container, probe.kind), True)

    def docker(self, args: list[str], **_: object):
        self.calls.append(args)
        name = args[-1]
        self.state[name] = "running"
        self.started[name] = f"2026-12-07T07:00:{len(self.calls):02d}Z"  # a new start, within the simulated clock
        return None


@pytest.fixture
def engine(monkeypatch) -> Engine:
    e = Engine()
    monkeypatch.setattr(kubelet, "inspect", e.inspect)
    monkeypatch.setattr(kubelet, "probe_once", e.probe)
    monkeypatch.setattr(kubelet, "docker", e.docker)
    return e


def _settle(k: kubelet.Kubelet) -> None:
    """Let every probe / restart the last tick started finish (the next tick reads their results)."""
    for cs in k.states.values():
        for fut in [*cs.pending.values(), *([cs.acting] if cs.acting else [])]:
            fut.result(timeout=10)


def _run(k: kubelet.Kubelet, start: float, seconds: float) -> dict:
    status: dict = {}
    t = start
    while t <= start + seconds:
        status = k.tick(now=t)
        _settle(k)
        t += 0.5
    return status


T0 = 1796626800.0  # 2026-12-07T07:00:00Z (the fake StartedAt); ticks run on this simulated clock


def test_only_ready_pods_are_endpoints(tmp_path: Path, engine: Engine) -> None:
    kubelet.write_spec(tmp_path, {"pods": {"p0": _pod("10.0.0.2", ["a", "b"]), "p1": _pod("10.0.0.3", ["a"])},
                                  "services": [SERVICE]})  # fmt: skip
    engine.probe_ok["rh-10.0.0.2-b", "http"] = False  # one container of p0 never passes its readiness probe
    k = kubelet.Kubelet("rh", tmp_path)
    status = _run(k, T0, 4)
    assert status["pods"]["p1"]["ready"] and not status["pods"]["p0"]["ready"]
    eps = json.loads((tmp_path / "endpoints" / "svc.json").read_text())["ports"]
    assert eps == {"80": [{"pod": "p1", "ip": "10.0.0.3", "port": 8000}]}  # the named target port resolved
    assert status["services"] == {"svc": {"80": ["p1"]}}

    engine.probe_ok["rh-10.0.0.2-b", "http"] = True  # passes now: p0 joins (successThreshold 1)
    status = _run(k, T0 + 5, 2)
    assert status["services"] == {"svc": {"80": ["p0", "p1"]}}

    engine.probe_ok["rh-10.0.0.2-a", "http"] = False  # fails failureThreshold (2) times in a row: out again
    status = _run(k, T0 + 8, 1.0)
    assert status["services"]["svc"]["80"] == ["p0", "p1"]  # one failure is not enough
    status = _run(k, T0 + 9.5, 3)
    assert (
        status["services"]["svc"]["80"] == ["p1"]
        and "not ready" in status["pods"]["p0"]["containers"]["a"]["last_event"]
    )


def test_a_stopped_container_leaves_at_once_and_is_started_again(tmp_path: Path, engine: Engine) -> None:
    kubelet.write_spec(tmp_path, {"pods": {"p0": _pod("10.0.0.2", ["a"]), "p1": _pod("10.0.0.3", ["a"])},
                                  "services": [SERVICE]})  # fmt: skip
    k = kubelet.Kubelet("rh", tmp_path)
    _run(k, T0, 2)
    engine.state["rh-10.0.0.2-a"] = "exited"  # docker kill: the engine does not restart it itself
    status = k.tick(now=T0 + 3)
    assert status["services"]["svc"]["80"] == ["p1"]  # not running = not ready, no probe needed
    assert engine.calls == [["start", "rh-10.0.0.2-a"]]  # restartPolicy Always, the first time at once
    _settle(k)
    status = _run(k, T0 + 3.5, 3)
    assert status["services"]["svc"]["80"] == ["p0", "p1"]  # ready again after its readiness probe passed
    assert status["pods"]["p0"]["containers"]["a"]["restarts"] == 1
    engine.state["rh-10.0.0.2-a"] = "exited"  # again: now after the kubelet's back-off (10 s)
    _run(k, T0 + 7, 5)
    assert len(engine.calls) == 1
    _run(k, T0 + 12.5, 6)
    assert engine.calls[-1] == ["start", "rh-10.0.0.2-a"] and len(engine.calls) == 2


def test_liveness_failures_restart_the_container_with_its_grace_period(tmp_path: Path, engine: Engine) -> None:
    kubelet.write_spec(tmp_path, {"pods": {"p0": _pod("10.0.0.2", ["a"])}, "services": [SERVICE]})
    k = kubelet.Kubelet("rh", tmp_path)
    engine.probe_ok["rh-10.0.0.2-a", "tcp"] = False  # its liveness probe
    _run(k, T0, 4.5)  # liveness starts after initialDelaySeconds (5 s): no restart yet
    assert engine.calls == []
    status = _run(k, T0 + 5, 4)  # three failures, a second apart
    assert engine.calls == [["restart", "-t", "7", "rh-10.0.0.2-a"]]
    assert "liveness tcp probe failed 3 times" in status["pods"]["p0"]["containers"]["a"]["last_event"]


def test_terminating_pods_leave_their_service_and_stay_stopped(tmp_path: Path, engine: Engine) -> None:
    spec = {"pods": {"p0": _pod("10.0.0.2", ["a"]), "p1": _pod("10.0.0.3", ["a"])}, "services": [SERVICE]}
    kubelet.write_spec(tmp_path, spec)
    k = kubelet.Kubelet("rh", tmp_path)
    _run(k, T0, 2)
    spec["pods"]["p0"]["terminating"] = True
    kubelet.write_spec(tmp_path, spec)
    engine.state["rh-10.0.0.2-a"] = "exited"
    status = _run(k, T0 + 3, 2)
    assert status["services"]["svc"]["80"] == ["p1"] and engine.calls == []
    assert kubelet.wait_endpoints(tmp_path, {"svc": {"p1"}}, {"p0"}, timeout_s=1) >= 0
    with pytest.raises(TimeoutError):
        kubelet.wait_endpoints(tmp_path, {"svc": {"p0"}}, set(), timeout_s=0.5)


def test_probe_json_round_trip() -> None:
    probe = Probe("http", 8000, "/ready", headers=(("Host", "localhost"),), period_s=5.0)
    assert kubelet.probe_from_json(json.loads(json.dumps(kubelet.probe_to_json(probe)))) == probe
    assert kubelet.probe_from_json(None) is None


def test_started_at_parses_nanoseconds() -> None:
    assert kubelet._started_wall("2026-12-07T07:00:00.123456789Z") == pytest.approx(T0 + 0.123456789)
    assert kubelet._started_wall("2026-12-07T07:00:00Z") == T0


# ------------------------------------------------------------------------------------------- the proxy
class Backend:
    """A TCP server answering each connection with its name."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(100)
                conn.sendall(self.name.encode())


def _ask(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"hello")
        s.shutdown(socket.SHUT_WR)  # half-close: the answer still comes back
        chunks = []
        while data := s.recv(100):
            chunks.append(data)
        return b"".join(chunks).decode()


def _write(path: Path, eps: list[Backend], generation: int) -> None:
    ports = {"80": [{"pod": b.name, "ip": "127.0.0.1", "port": b.port} for b in eps]}
    kubelet.write_json(path, {"generation": generation, "ports": ports})


def test_proxy_round_robins_over_ready_endpoints_and_follows_the_file(tmp_path: Path, monkeypatch) -> None:
    a, b = Backend("pod-a"), Backend("pod-b")
    path = tmp_path / "svc.json"
    _write(path, [a, b], 1)
    port = free_port()
    monkeypatch.setattr(service_proxy, "POLL_S", 0.05)
    real = service_proxy.Proxy.handle

    async def handle(self, svc_port, reader, writer):  # the Service's port 80 is served on a free port here
        await real(self, 80, reader, writer)

    monkeypatch.setattr(service_proxy.Proxy, "handle", handle)
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    serving = asyncio.run_coroutine_threadsafe(service_proxy.serve("svc", str(path), [port]), loop)
    deadline = time.monotonic() + 10
    while True:  # bounded wait for the listener
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    got = [_ask(port) for _ in range(4)]
    assert sorted(got) == ["pod-a", "pod-a", "pod-b", "pod-b"] and got[0] != got[1]  # alternating
    _write(path, [b], 2)  # pod-a not ready any more
    deadline = time.monotonic() + 5
    while service_proxy_generation(path) != 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # > the proxy's poll
    assert {_ask(port) for _ in range(4)} == {"pod-b"}
    _write(path, [], 3)  # none ready: the connection is closed (reset) without an answer, as with no endpoints
    time.sleep(0.3)
    try:
        answer = _ask(port)
    except OSError as exc:  # reset before or after our half-close: no answer (a timeout would be a hang: fails)
        assert exc.errno in (errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN), exc
        answer = ""
    assert answer == ""
    serving.cancel()
    loop.call_soon_threadsafe(loop.stop)


def service_proxy_generation(path: Path) -> int:
    return json.loads(path.read_text())["generation"]


def test_a_terminating_pod_is_not_restarted_by_its_liveness_probe(tmp_path: Path, engine: Engine) -> None:
    """While a deleted pod is killed (preStop hooks, then SIGTERM) its probes fail; the kubelet restarts nothing."""
    spec = {"pods": {"p0": _pod("10.0.0.2", ["a"], terminating=True)}, "services": [SERVICE]}
    kubelet.write_spec(tmp_path, spec)
    k = kubelet.Kubelet("rh", tmp_path)
    engine.probe_ok[("rh-10.0.0.2-a", "tcp")] = False
    status = _run(k, T0, 12)
    assert engine.calls == [] and status["services"]["svc"]["80"] == []


def test_hook_json_round_trip() -> None:
    for hook in (
        Hook("exec", command=("/bin/sh", "-c", "/bin/sleep 10")),
        Hook("http", port=9000, path="/drain", headers=(("Host", "localhost"),)),
        Hook("sleep", seconds=3.0),
    ):
        assert kubelet.hook_from_json(json.loads(json.dumps(kubelet.probe_to_json(hook)))) == hook
    assert kubelet.hook_from_json(None) is None


def test_terminate_pod_kills_as_the_kubelet_does(monkeypatch) -> None:
    """Every container at once; a container's preStop hook runs before its SIGTERM, which gets what is left of the
    grace period (at least 2 s); a container without a hook gets SIGTERM at once; then the pod is removed."""
    from smartreco.rehearse import runner

    calls: list[tuple[float, list[str]]] = []
    lock = threading.Lock()
    began = time.monotonic()

    def docker(args: list[str], **_: object) -> None:
        with lock:
            calls.append((time.monotonic() - began, list(args)))
        if args[0] == "exec":
            time.sleep(float(args[-1].rsplit(" ", 1)[-1]) / 10)  # "/bin/sleep N": N/10 s here

    monkeypatch.setattr(runner, "docker", docker)
    removed: list[str] = []
    monkeypatch.setattr(runner, "remove_pod", lambda name, pod: removed.append(pod))
    hook = {"kind": "exec", "command": ["/bin/sh", "-c", "/bin/sleep 10"]}
    long_hook = {"kind": "exec", "command": ["/bin/sh", "-c", "/bin/sleep 40"]}  # 4 s here, past a 3 s grace
    entry = {
        "ip": "10.0.0.2",
        "grace_s": 3,
        "containers": [
            {"name": "node", "engine": "rh-node", "pre_stop": hook},
            {"name": "slow", "engine": "rh-slow", "pre_stop": long_hook},
            {"name": "executor", "engine": "rh-executor", "pre_stop": None},
        ],
    }
    took = runner.terminate_pod("rh", "p0", entry)
    by = {(args[0], args[1] if args[0] == "exec" else args[-1]): (t, args) for t, args in calls}
    t_exec, _ = by[("exec", "rh-node")]
    t_stop, stop = by[("stop", "rh-node")]
    assert stop == ["stop", "-t", "2", "rh-node"] and t_stop >= t_exec + 1.0  # ceil(3 - 1.0) after the hook
    assert by[("stop", "rh-executor")][1] == ["stop", "-t", "3", "rh-executor"]
    assert by[("stop", "rh-executor")][0] < t_exec + 1.0  # at once, while the node's hook still runs
    assert by[("stop", "rh-slow")][1] == ["stop", "-t", str(runner.MIN_GRACE_S), "rh-slow"]  # the floor
    assert removed == ["p0"] and took >= 3.0
