"""The engine side of a rehearsal: network, volumes (with the pod's fsGroup applied as the kubelet does),
ConfigMap/Secret files, the pods (sandbox, init containers in order, containers), readiness from the
manifests' probes, and ``down``. Everything it creates carries the label ``org.smartreco.rehearsal=<name>``,
so ``down`` (and the next ``up``) removes it all, whatever state an earlier run left."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from smartreco.containers.engine import EngineError, docker, require_engine
from smartreco.rehearse import docker_args as da
from smartreco.rehearse import kubelet, patches
from smartreco.rehearse.kubelet import probe_once
from smartreco.rehearse.translate import ContainerSpec, Hook, Plan, PodSpec

Log = Callable[[str], None]


#: restarts after which a container counts as crash-looping (the kubelet's CrashLoopBackOff)
CRASH_LOOP_RESTARTS = 5


class RehearsalError(EngineError):
    """A pod did not start or become ready; the message has the container's last log lines."""


# ---------------------------------------------------------------------------------------------- down
def remove(name: str, keep_data: bool = False) -> dict[str, int]:
    """Remove every container, network and (unless ``keep_data``) volume labelled with rehearsal ``name``."""
    label = f"label={da.LABEL}={name}"
    ids = docker(["ps", "-aq", "--filter", label], check=False).stdout.split()
    if ids:
        docker(["rm", "-f", "-v", *ids], check=False, timeout=300)
    nets = docker(["network", "ls", "-q", "--filter", label], check=False).stdout.split()
    for net in nets:
        docker(["network", "rm", net], check=False)
    vols: list[str] = []
    if not keep_data:
        vols = docker(["volume", "ls", "-q", "--filter", label], check=False).stdout.split()
        if vols:
            docker(["volume", "rm", "-f", *vols], check=False)
    return {"containers": len(ids), "networks": len(nets), "volumes": len(vols)}


def workload_pods(name: str, workload: str) -> list[str]:
    """Pods of ``workload`` (Kind/name) running in rehearsal ``name``, by their sandbox containers."""
    proc = docker(
        [
            "ps",
            "-a",
            "--filter",
            f"label={da.LABEL}={name}",
            "--filter",
            f"label={da.LABEL_WORKLOAD}={workload}",
            "--filter",
            f"label={da.LABEL_CONTAINER}=POD",
            "--format",
            '{{.Label "' + da.LABEL_POD + '"}}',
        ],
        check=False,
    )
    return sorted(set(proc.stdout.split()))


def remove_pod(name: str, pod: str) -> None:
    """Stop a pod as the kubelet does (its containers get their grace period, then the sandbox goes) and
    remove its emptyDir volumes."""
    label = [f"label={da.LABEL}={name}", f"label={da.LABEL_POD}={pod}"]
    ids = docker(["ps", "-aq", *[a for f in label for a in ("--filter", f)]], check=False).stdout.split()
    pause = docker(
        ["ps", "-aq", *[a for f in label for a in ("--filter", f)], "--filter", f"label={da.LABEL_CONTAINER}=POD"],
        check=False,
    ).stdout.split()
    workers = [i for i in ids if i not in pause]
    if workers:
        docker(["stop", *workers], check=False, timeout=120)
    if ids:
        docker(["rm", "-f", "-v", *ids], check=False, timeout=120)
    vols = docker(
        ["volume", "ls", "-q", "--filter", f"label={da.LABEL}={name}", "--filter", f"label={da.LABEL_POD}={pod}"],
        check=False,
    ).stdout.split()
    if vols:
        docker(["volume", "rm", "-f", *vols], check=False)


#: the kubelet's floor for the SIGTERM-to-SIGKILL time left after a preStop hook (``minimumGracePeriodInSeconds``)
MIN_GRACE_S = 2


def run_hook(hook: Hook, ip: str, container: str, timeout_s: float) -> None:
    """A preStop hook as the kubelet runs it: ``exec`` inside the container, ``httpGet`` at the pod's IP, ``sleep``
    in the kubelet; bounded by the grace period, and a failing hook does not stop the kill (the kubelet records
    an event and sends SIGTERM anyway)."""
    timeout_s = max(timeout_s, 0.0)
    try:
        if hook.kind == "exec":
            docker(["exec", container, *hook.command], check=False, timeout=timeout_s)
        elif hook.kind == "http":
            req = urllib.request.Request(f"http://{ip}:{hook.port}{hook.path}", headers=dict(hook.headers))
            with urllib.request.urlopen(req, timeout=max(timeout_s, 1.0)) as r:
                r.read()
        elif hook.kind == "sleep":
            time.sleep(min(hook.seconds, timeout_s))
    except (OSError, subprocess.TimeoutExpired):
        pass


def kill_container(engine: str, hook: Hook | None, ip: str, grace_s: float, began: float) -> None:
    """One container of a pod being deleted, as the kubelet's ``killContainer``: its preStop hook, then SIGTERM
    with what is left of the pod's grace period (at least :data:`MIN_GRACE_S`), then SIGKILL (``docker stop -t``)."""
    if hook is not None:
        run_hook(hook, ip, engine, grace_s)
    left = max(MIN_GRACE_S, math.ceil(grace_s - (time.monotonic() - began)))
    docker(["stop", "-t", str(left), engine], check=False, timeout=left + 60)


def terminate_pod(name: str, pod: str, spec: dict | None) -> float:
    """Kill pod ``pod`` of rehearsal ``name`` as the kubelet kills a deleted pod: every container at once, each with
    its preStop hook first (``spec``: the pod's entry in the kubelet's pods file, :func:`pod_specs`); then the
    sandbox and the pod's emptyDir volumes go (:func:`remove_pod`). Returns the seconds it took. Without a spec
    (a pod this rehearsal did not record) the containers get SIGTERM at once, with their ``--stop-timeout``."""
    began = time.monotonic()
    containers = (spec or {}).get("containers") or []
    grace = float((spec or {}).get("grace_s", 30))
    if containers:
        with ThreadPoolExecutor(len(containers), thread_name_prefix="kill") as pool:
            for f in [
                pool.submit(
                    kill_container, c["engine"], kubelet.hook_from_json(c.get("pre_stop")), spec["ip"], grace, began
                )
                for c in containers
            ]:
                f.result()
    remove_pod(name, pod)
    return time.monotonic() - began


def leftovers(name: str) -> dict[str, list[str]]:
    """What the engine still holds for rehearsal ``name`` (empty lists after ``down``)."""
    label = f"label={da.LABEL}={name}"
    return {
        "containers": docker(["ps", "-aq", "--filter", label], check=False).stdout.split(),
        "networks": docker(["network", "ls", "-q", "--filter", label], check=False).stdout.split(),
        "volumes": docker(["volume", "ls", "-q", "--filter", label], check=False).stdout.split(),
    }


# ------------------------------------------------------------------------------------------- helpers
def _mountpoint(volume: str) -> Path:
    return Path(docker(["volume", "inspect", "-f", "{{.Mountpoint}}", volume]).stdout.strip())


def _apply_fs_group(path: Path, gid: int | None, mode: int) -> None:
    """The kubelet's fsGroup on a fresh volume: group ``gid``, setgid, group-writable (needs root here)."""
    if os.geteuid() != 0:
        raise RehearsalError(
            "the rehearsal sets volume ownership (fsGroup) on the engine's volumes: run it as root on the engine's host"
        )
    if gid is not None:
        os.chown(path, 0, gid)
    os.chmod(path, mode)


def write_files(folder: Path, files: tuple[tuple[str, str], ...], gid: int | None, secret: bool) -> None:
    """A configMap/secret volume's files (0644 / 0440 with the pod's fsGroup, as the kubelet writes them)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.chmod(folder, 0o755)
    for rel, content in files:
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        os.chmod(path, 0o440 if secret else 0o644)
        if secret and gid is not None and os.geteuid() == 0:
            os.chown(path, 0, gid)


def container_ip(container: str) -> str:
    out = docker(
        ["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", container], check=False
    ).stdout.split()
    return out[0] if out else ""


def container_state(container: str) -> tuple[str, int, int]:
    """(status, exit code, restart count); ("missing", -1, 0) when there is no such container."""
    proc = docker(["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}", container], check=False)
    if proc.returncode != 0:
        return "missing", -1, 0
    status, code, restarts = proc.stdout.split()
    return status, int(code), int(restarts)


def logs_tail(container: str, lines: int = 25) -> str:
    proc = docker(["logs", "--tail", str(lines), container], check=False, timeout=30)
    return (proc.stdout + proc.stderr).strip()[-2500:]


@dataclass
class RunningPod:
    pod: PodSpec
    pause: str
    ip: str = ""
    containers: dict[str, str] = field(default_factory=dict)  # container name -> engine name

    def describe(self) -> dict:
        out = {"pod": self.pod.name, "ip": self.ip, "aliases": self.pod.aliases, "containers": []}
        for c in self.pod.containers:
            status, code, restarts = container_state(self.containers.get(c.name, ""))
            out["containers"].append(
                {
                    "name": c.name,
                    "engine_name": self.containers.get(c.name),
                    "image": c.image,
                    "manifest_image": c.manifest_image,
                    "state": status,
                    "restarts": restarts,
                    "ports": c.ports,
                }
            )
        return out


# --------------------------------------------------------------------------------------------------- up
class Rehearsal:
    """One rehearsal on the engine: ``start()`` runs the plan's pods; ``wait_ready()`` follows the probes."""

    def __init__(self, plan: Plan, state_dir: Path, models_dir: Path | None = None, log: Log = print) -> None:
        self.plan = plan
        self.state_dir = state_dir
        self.models_dir = models_dir
        self.log = log
        self.pods: dict[str, RunningPod] = {}
        self.proxies: dict[str, str] = {}  # Service -> its proxy's IP

    def start(self) -> None:
        """A fresh rehearsal: whatever carries its name is removed first. Then a proxy per Service that sends to
        the ready pods only, the pods, and the kubelet that probes them (:mod:`smartreco.rehearse.kubelet`)."""
        require_engine()
        kubelet.stop(self.state_dir)
        gone = remove(self.plan.name)
        if any(gone.values()):
            self.log(f"[rehearse] removed the previous rehearsal: {gone}")
        docker(da.network_create(self.plan))
        # the Services first, as a cluster has them before their pods: an init container that waits for another
        # pod's Service (MLflow's `db-upgrade` for PostgreSQL) resolves its name and is refused until that pod is
        # ready, as it would be on a cluster, instead of failing on a name that does not exist yet
        self.start_services()
        self._volumes()
        # pods without init containers first (``_start_pod`` waits for a pod's init containers), then the kubelet,
        # so the pods they wait for are probed and join their Services meanwhile
        first = [p for p in self.plan.pods if not p.init_containers]
        for pod in first:
            self._start_pod(pod)
        self._publish()
        pid = kubelet.start(self.plan.name, self.state_dir)
        self.log(f"[rehearse] kubelet (probes, restarts, Service endpoints) running as pid {pid}")
        for pod in self.plan.pods:
            if pod.init_containers:
                self._start_pod(pod)
                self._publish()

    def _publish(self) -> None:
        """The kubelet's pods file with every pod started so far (it reads it on its next pass)."""
        kubelet.write_spec(self.state_dir, {"pods": pod_specs(self.pods), "services": service_specs(self.plan)})

    def start_services(self) -> None:
        """One proxy container per Service with a selector (see :mod:`smartreco.rehearse.service_proxy`)."""
        from smartreco import images

        script = Path(__file__).with_name("service_proxy.py")
        endpoints_dir = self.state_dir / kubelet.ENDPOINTS_DIR
        endpoints_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(endpoints_dir, 0o755)
        for svc in self.plan.services:
            if not svc.selector or not svc.ports:
                continue
            docker(da.service_proxy_run(self.plan, svc, images.serving_image(), script, endpoints_dir))
            self.proxies[svc.name] = container_ip(da.service_proxy_name(self.plan, svc.name))
            self.log(f"[rehearse] Service/{svc.name} at {self.proxies[svc.name]} (proxy to its ready pods)")

    def wait_services(self, timeout_s: float, absent: frozenset[str] = frozenset()) -> float:
        """Seconds until every Service sends to all of its pods that this rehearsal started (the kubelet found
        them ready) and to none of ``absent``."""
        want = {
            svc.name: {p for p in svc.pods if p in self.pods}
            for svc in self.plan.services
            if svc.selector and svc.ports and any(p in self.pods for p in svc.pods)
        }
        try:
            return kubelet.wait_endpoints(self.state_dir, want, set(absent), timeout_s)
        except TimeoutError as exc:
            raise RehearsalError(str(exc)) from None

    def start_more(self) -> None:
        """The plan's pods on the rehearsal's existing network (``apply``: next to the running ones, whose
        Services and kubelet are up)."""
        self._volumes()
        for pod in self.plan.pods:
            self._start_pod(pod)

    def _volumes(self) -> None:
        made: set[str] = set()
        for pod in self.plan.pods:
            for vol in pod.volumes.values():
                if vol.kind not in ("emptyDir", "pvc") or vol.docker_volume in made:
                    continue
                docker(da.volume_create(self.plan, vol.docker_volume, pod if vol.kind == "emptyDir" else None))
                made.add(vol.docker_volume)
                # emptyDir: world-writable as the kubelet makes it; a claim: the pod's fsGroup, setgid
                where = _mountpoint(vol.docker_volume)
                _apply_fs_group(where, pod.fs_group, 0o1777 if vol.kind == "emptyDir" else 0o2775)
                if vol.name == patches.OBJECT_STORE_CLAIM:  # the buckets docs/deploying.md says to create
                    for key in patches.S3_KEYS.values():
                        bucket = where / key.split("/", 1)[0]
                        bucket.mkdir(exist_ok=True)
                        _apply_fs_group(bucket, pod.fs_group, 0o2775)

    def _fill_models(self, pod: PodSpec) -> None:
        vol = pod.volumes.get("models")
        if self.models_dir is None or vol is None or vol.kind != "emptyDir":
            return
        target = _mountpoint(vol.docker_volume)
        shutil.copytree(self.models_dir, target, dirs_exist_ok=True, symlinks=False)
        for root, dirs, files in os.walk(target):
            for name in [*dirs, *files]:
                p = Path(root) / name
                os.chown(p, 0, pod.fs_group or 0)
                os.chmod(p, 0o755 if p.is_dir() else 0o644)

    def _start_pod(self, pod: PodSpec) -> None:
        running = RunningPod(pod, da.pause_name(self.plan, pod))
        self.pods[pod.name] = running
        docker(da.pause_run(self.plan, pod))
        running.ip = container_ip(running.pause)
        files: dict[str, Path] = {}
        for vol in pod.volumes.values():
            if vol.kind in ("configMap", "secret"):
                folder = self.state_dir / "pods" / pod.name / vol.name
                write_files(folder, vol.files, pod.fs_group, vol.kind == "secret")
                files[vol.name] = folder
        self._fill_models(pod)
        for c in pod.init_containers:
            name = self._run(pod, c, files)
            code = docker(["wait", name], timeout=1800).stdout.strip()
            if code != "0":
                raise RehearsalError(
                    f"{pod.workload} pod {pod.name}: init container {c.name} exited {code}:\n{logs_tail(name)}"
                )
            self.log(f"[rehearse] {pod.name}: init container {c.name} done")
        for c in pod.containers:
            running.containers[c.name] = self._run(pod, c, files)
        self.log(
            f"[rehearse] {pod.workload} pod {pod.name} started at {running.ip} "
            f"({', '.join(c.name for c in pod.containers)})"
        )

    def _run(self, pod: PodSpec, c: ContainerSpec, files: dict[str, Path]) -> str:
        args, env = da.container_run(self.plan, pod, c, files)
        proc = subprocess.run(["docker", *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=300)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            hint = (
                " (build it: `smartreco images build`)" if "No such image" in last or "Unable to find" in last else ""
            )
            raise RehearsalError(f"{pod.workload} pod {pod.name}: docker run {c.name} ({c.image}) failed: {last}{hint}")
        return da.container_name(self.plan, pod, c)

    def not_ready(self) -> dict[str, str]:
        """Container -> why it is not ready now (empty: every pod ready). A container that exits is restarted
        by the engine (restartPolicy Always, with back-off, as the kubelet does while a dependency comes up);
        one that keeps crashing (CrashLoopBackOff) or is gone raises, with its last log lines."""
        out: dict[str, str] = {}
        for running in self.pods.values():
            for c in running.pod.containers:
                name = running.containers[c.name]
                status, code, restarts = container_state(name)
                if status in ("dead", "missing") or restarts >= CRASH_LOOP_RESTARTS:
                    raise RehearsalError(
                        f"{running.pod.workload} pod {running.pod.name}: container {c.name} {status} "
                        f"(exit {code}, restarts {restarts}):\n{logs_tail(name)}"
                    )
                if status != "running":
                    out[name] = f"{status} (restarts {restarts})"
                elif c.readiness is not None and not probe_once(c.readiness, running.ip, name):
                    out[name] = f"readiness {c.readiness.kind} probe failing"
        return out

    def wait_ready(self, timeout_s: float) -> float:
        """Seconds until every container is ready (its readiness probe passes)."""
        start = time.monotonic()
        last_shown = ""
        while True:
            pending = self.not_ready()
            if not pending:
                return time.monotonic() - start
            shown = ", ".join(sorted(pending))
            if shown != last_shown:
                self.log(f"[rehearse] waiting for {len(pending)} container(s): {shown}")
                last_shown = shown
            if time.monotonic() - start > timeout_s:
                tails = "\n".join(f"--- {n}:\n{logs_tail(n, 10)}" for n in sorted(pending))
                raise RehearsalError(f"not ready after {timeout_s:.0f} s: {pending}\n{tails}")
            time.sleep(2.0)

    def describe(self) -> dict:
        return {name: r.describe() for name, r in self.pods.items()}


def pod_specs(pods: dict[str, RunningPod]) -> dict[str, dict]:
    """The running pods as the kubelet follows them (``pods.json``): address, labels, each container's engine
    name, ports and probes."""
    return {
        name: {
            "workload": r.pod.workload,
            "labels": r.pod.labels,
            "ip": r.ip,
            "grace_s": r.pod.termination_grace_s,
            "terminating": False,
            "containers": [
                {
                    "name": c.name,
                    "engine": r.containers[c.name],
                    "ports": c.ports,
                    "readiness": kubelet.probe_to_json(c.readiness),
                    "liveness": kubelet.probe_to_json(c.liveness),
                    "startup": kubelet.probe_to_json(c.startup),
                    "pre_stop": kubelet.probe_to_json(c.pre_stop),
                }
                for c in r.pod.containers
            ],
        }
        for name, r in pods.items()
    }


def service_specs(plan: Plan) -> list[dict]:
    return [{"name": s.name, "selector": s.selector, "ports": s.ports} for s in plan.services if s.selector and s.ports]


def service_addresses(plan: Plan, proxies: dict[str, str]) -> dict[str, str]:
    """``SERVICE:PORTNAME`` -> the Service's address as the host reaches it (its proxy's IP and the Service port)."""
    out: dict[str, str] = {}
    for svc in plan.services:
        if svc.name in proxies:
            for port in svc.ports:
                out[f"{svc.name}:{port.get('name') or port['port']}"] = f"{proxies[svc.name]}:{port['port']}"
    return out


def endpoints(plan: Plan, pods: dict[str, RunningPod]) -> dict[str, list[str]]:
    """Each Service's endpoints as the host reaches them (pod IP:port; a client in the network uses the name)."""
    out: dict[str, list[str]] = {}
    for svc in plan.services:
        for port in svc.ports:
            target = port.get("targetPort", port["port"])
            for pname in svc.pods:
                running = pods.get(pname)
                if running is None:
                    continue
                number = (
                    int(target)
                    if str(target).isdigit()
                    else next(
                        (c.ports[str(target)] for c in running.pod.containers if str(target) in c.ports), port["port"]
                    )
                )
                out.setdefault(f"{svc.name}:{port.get('name') or port['port']}", []).append(f"{running.ip}:{number}")
    return out


def save_state(state_dir: Path, data: dict) -> Path:
    path = state_dir / "rehearsal.json"
    path.write_text(json.dumps(data, indent=1, sort_keys=True))
    return path
