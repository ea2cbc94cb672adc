"""The rehearsal's kubelet and Endpoints controller: one host process per rehearsal (started by ``up``, stopped by
``down``) that follows every pod's containers as the kubelet does and decides which pods each Service sends to.

Per container, from the manifests' probes (:class:`~smartreco.rehearse.translate.Probe`):

- **startup** (if any) gates the other two; **readiness** after ``initialDelaySeconds``, every ``periodSeconds``,
  ``successThreshold`` passes in a row make it ready, ``failureThreshold`` failures in a row not ready; no readiness
  probe: ready while running; a container that is not running is not ready at once (its status, not a probe).
- **liveness** ``failureThreshold`` failures in a row: the container is restarted (``docker restart`` with the
  pod's grace period), as the kubelet kills and restarts it.
- **restartPolicy Always**: a container that stopped and that the engine does not restart itself (``docker kill``,
  ``docker stop``: the engine's own ``--restart always`` skips those) is started again, the first time at once,
  then with the kubelet's back-off (10 s doubling, at most 300 s).

A pod is ready when every container is; each Service's endpoints file (``endpoints/<service>.json``) lists its
selected, ready, not terminating pods per Service port with the resolved target port, and the Service proxies
(:mod:`smartreco.rehearse.service_proxy`) follow it. Probes run from the host at the pod's IP (HTTP/TCP) or inside
the container (exec), in a thread pool so a hanging probe delays no other pod. What it reads and writes, all in the
rehearsal's state folder: ``pods.json`` (``up``/``apply`` write it: pods, containers, probes, preStop hooks,
Services; a ``terminating`` pod leaves every Service on the next pass while ``apply`` kills it, as the Endpoints
controller and the kubelet both act on a pod's deletion, neither waiting for the other; none of its containers is
restarted), ``endpoints/``, ``kubelet.json`` (each container's state, readiness and restarts: what ``kubectl get
pods`` shows) and ``kubelet.log`` (events)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from smartreco.containers.engine import docker
from smartreco.rehearse.translate import Hook, Probe, selector_matches

_Action = TypeVar("_Action", Hook, Probe)

SPEC_FILE = "pods.json"
STATUS_FILE = "kubelet.json"
ENDPOINTS_DIR = "endpoints"
PID_FILE = "kubelet.pid"
LOG_FILE = "kubelet.log"
#: the loop's tick (probes keep their own periods; this bounds how late a decision is)
TICK_S = 0.5
BACKOFF_S = (10.0, 300.0)  # the kubelet's restart back-off: first, cap
#: engine states the kubelet counts as running: a paused container is a process that stopped answering (its
#: probes decide, as they would for a hung process on a node)
RUNNING = ("running", "paused")
#: ticks without a spec file or without any container of the rehearsal before the loop ends on its own
ORPHAN_TICKS = 20


# ------------------------------------------------------------------------------------------------ probes
def probe_once(probe: Probe, ip: str, container: str) -> bool:
    """One probe, from where the kubelet probes: the pod IP for HTTP/TCP, inside the container for exec."""
    try:
        if probe.kind == "http":
            req = urllib.request.Request(f"http://{ip}:{probe.port}{probe.path}", headers=dict(probe.headers))
            with urllib.request.urlopen(req, timeout=max(probe.timeout_s, 1.0)) as r:
                return 200 <= r.status < 400
        if probe.kind == "tcp":
            with socket.create_connection((ip, int(probe.port or 0)), timeout=max(probe.timeout_s, 1.0)):
                return True
        if probe.kind == "exec":
            proc = docker(["exec", container, *probe.command], check=False, timeout=max(probe.timeout_s, 5.0))
            return proc.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
    return False


def probe_to_json(probe: Probe | Hook | None) -> dict[str, Any] | None:
    return None if probe is None else dataclasses.asdict(probe)


def _from_json(cls: type[_Action], data: dict[str, Any] | None) -> _Action | None:
    """A probe or hook back from pods.json (JSON made its tuples lists)."""
    if not data:
        return None
    return cls(
        **{
            **data,
            "command": tuple(data.get("command") or ()),
            "headers": tuple(tuple(h) for h in data.get("headers") or ()),
        }
    )


def hook_from_json(data: dict[str, Any] | None) -> Hook | None:
    return _from_json(Hook, data)


def probe_from_json(data: dict[str, Any] | None) -> Probe | None:
    return _from_json(Probe, data)


# ------------------------------------------------------------------------------------------------ spec
def read_spec(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / SPEC_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically (rename), so a reader never sees half a file; readable by the proxies' user."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def write_spec(folder: Path, spec: dict[str, Any]) -> None:
    write_json(folder / SPEC_FILE, spec)


def read_status(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / STATUS_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return {}


def target_port(containers: list[dict[str, Any]], target: Any) -> int | None:
    if str(target).isdigit():
        return int(target)
    for c in containers:
        if str(target) in (c.get("ports") or {}):
            return int(c["ports"][str(target)])
    return None


def endpoints_of(spec: dict[str, Any], ready: dict[str, bool]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Service -> Service port -> its ready endpoints (pods in name order): the Endpoints controller."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    pods = spec.get("pods") or {}
    for svc in spec.get("services") or []:
        ports: dict[str, list[dict[str, Any]]] = {}
        for port in svc.get("ports") or []:
            eps = []
            for name in sorted(pods):
                pod = pods[name]
                if pod.get("terminating") or not ready.get(name):
                    continue
                if not selector_matches(svc.get("selector") or {}, pod.get("labels") or {}):
                    continue
                number = target_port(pod["containers"], port.get("targetPort", port["port"]))
                if number is not None:
                    eps.append({"pod": name, "ip": pod["ip"], "port": number})
            ports[str(port["port"])] = eps
        out[svc["name"]] = ports
    return out


# ------------------------------------------------------------------------------------------------ state
@dataclass
class ContainerState:
    started_at: str = ""
    start_t: float = 0.0  # wall clock of the current start
    ready: bool = False
    started: bool = False  # startup probe passed (or none)
    counts: dict[str, list[int]] = field(default_factory=dict)  # probe kind -> [successes, failures] in a row
    due: dict[str, float] = field(default_factory=dict)  # probe kind -> next time it runs
    pending: dict[str, Future] = field(default_factory=dict)
    kubelet_restarts: int = 0
    next_start_t: float = 0.0
    acting: Future | None = None  # a restart / start in progress
    last_event: str = ""


def _started_wall(text: str) -> float:
    """docker's StartedAt (RFC 3339, nanoseconds) as a Unix time."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?", text)
    if not m:
        return time.time()
    base = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    return base + (float(f"0.{m.group(2)}") if m.group(2) else 0.0)


def inspect(names: list[str]) -> dict[str, tuple[str, str, int]]:
    """Container name -> (status, StartedAt, the engine's restart count), one ``docker inspect`` for all."""
    if not names:
        return {}
    proc = docker(
        ["inspect", "-f", "{{.Name}}|{{.State.Status}}|{{.State.StartedAt}}|{{.RestartCount}}", *names],
        check=False,
        timeout=60,
    )
    out: dict[str, tuple[str, str, int]] = {}
    for line in proc.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 4:
            out[parts[0].lstrip("/")] = (parts[1], parts[2], int(parts[3] or 0))
    return out


class Kubelet:
    """The loop's state; :meth:`tick` is one pass (tests drive it directly)."""

    def __init__(self, name: str, folder: Path, workers: int = 16) -> None:
        self.name = name
        self.folder = folder
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="probe")
        self.states: dict[str, ContainerState] = {}
        self.generation = 0
        self.written: dict[str, Any] = {}
        self.orphan = 0
        (folder / ENDPOINTS_DIR).mkdir(parents=True, exist_ok=True)
        os.chmod(folder / ENDPOINTS_DIR, 0o755)

    def event(self, text: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)

    def _probe(self, cs: ContainerState, kind: str, probe: Probe, ip: str, engine: str, now: float) -> bool | None:
        """The probe's last finished result when one finished this tick (None: none finished), scheduling the next."""
        result = None
        fut = cs.pending.get(kind)
        if fut is not None and fut.done():
            del cs.pending[kind]
            result = bool(fut.result())
            counts = cs.counts.setdefault(kind, [0, 0])
            counts[:] = [counts[0] + 1, 0] if result else [0, counts[1] + 1]
        if kind not in cs.pending and now >= cs.due.get(kind, cs.start_t + probe.initial_delay_s):
            cs.pending[kind] = self.pool.submit(probe_once, probe, ip, engine)
            cs.due[kind] = now + probe.period_s
        return result

    def _restart(self, engine: str, cs: ContainerState, why: str, grace: int, start_only: bool) -> None:
        cs.kubelet_restarts += 1
        cs.ready = False
        cs.last_event = why
        self.event(f"{engine}: {why}")
        args = ["start", engine] if start_only else ["restart", "-t", str(grace), engine]
        cs.acting = self.pool.submit(docker, args, check=False, timeout=grace + 60)

    def tick(self, now: float | None = None) -> dict[str, Any] | None:
        """One pass; returns the status written (None when the spec is gone)."""
        now = time.time() if now is None else now
        spec = read_spec(self.folder)
        if spec is None:
            self.orphan += 1
            return None
        pods = spec.get("pods") or {}
        engines = [c["engine"] for p in pods.values() for c in p["containers"]]
        seen = inspect(engines)
        self.orphan = self.orphan + 1 if not seen else 0
        ready: dict[str, bool] = {}
        status_pods: dict[str, Any] = {}
        for pod_name, pod in pods.items():
            cstatus: dict[str, Any] = {}
            for c in pod["containers"]:
                engine = c["engine"]
                cs = self.states.setdefault(engine, ContainerState())
                state, started_at, engine_restarts = seen.get(engine, ("missing", "", 0))
                if cs.acting is not None and not cs.acting.done():
                    state = "restarting"
                elif state in RUNNING and started_at != cs.started_at:  # a new start: probes begin afresh
                    cs.started_at, cs.start_t = started_at, _started_wall(started_at)
                    cs.ready = False
                    cs.started = c.get("startup") is None
                    cs.counts.clear()
                    cs.due.clear()
                    cs.pending.clear()
                if state not in RUNNING:
                    cs.ready = False
                    if state in ("exited", "created") and not pod.get("terminating") and now >= cs.next_start_t:
                        delay = min(BACKOFF_S[1], BACKOFF_S[0] * 2 ** max(cs.kubelet_restarts - 1, 0))
                        cs.next_start_t = now + delay
                        self._restart(engine, cs, f"{state}: started again (restartPolicy Always)", 0, True)
                else:
                    self._follow(c, cs, pod, now)
                cstatus[c["name"]] = {
                    "state": state,
                    "ready": cs.ready,
                    "restarts": engine_restarts + cs.kubelet_restarts,
                    "kubelet_restarts": cs.kubelet_restarts,
                    "last_event": cs.last_event,
                }
            ready[pod_name] = all(s["state"] in RUNNING and s["ready"] for s in cstatus.values())
            status_pods[pod_name] = {
                "ready": ready[pod_name],
                "terminating": bool(pod.get("terminating")),
                "containers": cstatus,
            }
        endpoints = endpoints_of(spec, ready)
        for svc, ports in endpoints.items():
            if self.written.get(svc) != ports:
                self.generation += 1
                write_json(self.folder / ENDPOINTS_DIR / f"{svc}.json", {"generation": self.generation, "ports": ports})
                shown = {p: [e["pod"] for e in eps] for p, eps in ports.items()}
                if svc in self.written:
                    self.event(f"Service/{svc} endpoints: {shown}")
                self.written[svc] = ports
        status = {
            "t": now,
            "generation": self.generation,
            "pods": status_pods,
            "services": {s: {p: [e["pod"] for e in eps] for p, eps in ports.items()} for s, ports in endpoints.items()},
        }
        write_json(self.folder / STATUS_FILE, status)
        return status

    def _follow(self, c: dict[str, Any], cs: ContainerState, pod: dict[str, Any], now: float) -> None:
        """Probes of a running container: startup, then liveness (restart) and readiness."""
        engine, ip = c["engine"], pod["ip"]
        startup = probe_from_json(c.get("startup"))
        if not cs.started and startup is not None:
            if self._probe(cs, "startup", startup, ip, engine, now) and cs.counts["startup"][0] >= 1:
                cs.started = True
            elif cs.counts.get("startup", [0, 0])[1] >= startup.failure_threshold:
                self._restart(engine, cs, "startup probe failed: restarted", int(pod.get("grace_s", 30)), False)
            return
        liveness = probe_from_json(c.get("liveness"))
        # a terminating pod is being killed: the kubelet restarts none of its containers, whatever liveness says
        if liveness is not None and not pod.get("terminating"):
            self._probe(cs, "liveness", liveness, ip, engine, now)
            if cs.counts.get("liveness", [0, 0])[1] >= liveness.failure_threshold:
                failures = cs.counts["liveness"][1]
                self._restart(
                    engine,
                    cs,
                    f"liveness {liveness.kind} probe failed {failures} times: restarted",
                    int(pod.get("grace_s", 30)),
                    False,
                )
                return
        readiness = probe_from_json(c.get("readiness"))
        if readiness is None:
            cs.ready = True
            return
        result = self._probe(cs, "readiness", readiness, ip, engine, now)
        if result is None:
            return
        ok, bad = cs.counts["readiness"]
        if not cs.ready and ok >= readiness.success_threshold:
            cs.ready = True
        elif cs.ready and bad >= readiness.failure_threshold:
            cs.ready = False
            cs.last_event = f"readiness {readiness.kind} probe failed {bad} times: not ready"
            self.event(f"{engine}: {cs.last_event}")

    def run(self) -> None:
        self.event(f"kubelet for rehearsal {self.name} ({self.folder})")
        while self.orphan < ORPHAN_TICKS:
            start = time.monotonic()
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - one bad pass must not stop every pod's probes
                self.event(f"tick failed: {type(exc).__name__}: {exc}")
            time.sleep(max(TICK_S - (time.monotonic() - start), 0.05))
        self.event("no rehearsal left to follow: exiting")


# ------------------------------------------------------------------------------------------------ process
def start(name: str, folder: Path) -> int:
    """Start the kubelet for rehearsal ``name`` as its own session (it outlives ``up``'s process); returns its pid."""
    import smartreco

    stop(folder)
    package_root = str(Path(smartreco.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (package_root, os.environ.get("PYTHONPATH"))))}
    with open(folder / LOG_FILE, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "smartreco.rehearse.kubelet", "--name", name, "--state", str(folder)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    (folder / PID_FILE).write_text(str(proc.pid))
    return proc.pid


def _ours(pid: int, folder: Path) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"smartreco.rehearse.kubelet" in cmdline and str(folder).encode() in cmdline


def stop(folder: Path) -> bool:
    """Stop the rehearsal's kubelet (only the process its pid file names, and only if it is that kubelet)."""
    pid_file = folder / PID_FILE
    try:
        pid = int(pid_file.read_text())
    except (FileNotFoundError, ValueError):
        return False
    pid_file.unlink(missing_ok=True)
    if not _ours(pid, folder):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _ours(pid, folder):
        try:  # our own child when `up` ran in this process: reap it
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                break
        except ChildProcessError:
            pass
        time.sleep(0.1)
    if _ours(pid, folder):
        os.kill(pid, signal.SIGKILL)
    return True


def wait_endpoints(folder: Path, want: dict[str, set[str]], absent: set[str], timeout_s: float) -> float:
    """Seconds until each Service lists at least the pods ``want`` names on every port and none of ``absent``
    (as the kubelet's status says); raises TimeoutError with what it saw."""
    start = time.monotonic()
    seen: dict[str, Any] = {}
    while time.monotonic() - start < timeout_s:
        seen = read_status(folder).get("services") or {}
        ok = all(
            svc in seen and all(pods <= set(eps) and not (absent & set(eps)) for eps in seen[svc].values())
            for svc, pods in want.items()
        ) and all(not (absent & set(eps)) for ports in seen.values() for eps in ports.values())
        if ok:
            return time.monotonic() - start
        time.sleep(0.2)
    raise TimeoutError(f"Service endpoints not as wanted after {timeout_s:.0f} s: want {want}, absent {absent}: {seen}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="the rehearsal's kubelet (probes, restarts, Service endpoints)")
    ap.add_argument("--name", required=True)
    ap.add_argument("--state", required=True, type=Path)
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    Kubelet(args.name, args.state).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
