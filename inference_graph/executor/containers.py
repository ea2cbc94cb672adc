"""Start and stop every graph node as a container of the serving image (``serve --containers``).

The same interface as :class:`~inference_graph.executor.processes.ProcessGroup` (``spawn``/``wait``/
``start``/``urls``/``describe``/``stop`` and ``procs`` by node name), so the executor does not care how
its nodes run. What a cluster's pod would get is read from the SeldonDeployment: image, ``env``
(``MODEL_NAME``, the ``PREDICTIVE_UNIT_*`` ports), the graph parameters, CPU/memory limits, the pod's
``runAsUser``, a read-only root file system with the ``emptyDir`` mounts as tmpfs, dropped capabilities.

Local differences, on purpose: the engine here has no bridge network, so containers use the host's
network (``--network host``) and listen on loopback ports (the manifest's when free, else free ones);
bundles, extra ``PYTHONPATH`` folders and the arm store are bind-mounted at their host paths (read-only
except the store), so parameters that name host paths stay valid inside. Every container carries the
labels ``org.smartreco.run`` (this group) and ``org.smartreco.owner-pid``: ``stop()`` removes the group by
label, and a new group first removes leftovers whose owner process is gone (an executor killed with
SIGKILL cannot clean up after itself).
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from inference_graph.executor.graph import GraphNodeSpec
from inference_graph.executor.processes import EXECUTOR_SECRETS, LOOPBACK, NodeStartError
from smartreco import settings
from smartreco.errors import SmartRecoError
from smartreco.paths import runs_dir
from smartreco.ports import free_port

LABEL_KIND = "org.smartreco.launcher"
LABEL_RUN = "org.smartreco.run"
LABEL_NODE = "org.smartreco.node"
LABEL_OWNER = "org.smartreco.owner-pid"
KIND = "graph-node"
#: the serving image's user (inference_graph/Dockerfile); the manifest's runAsUser wins when it sets one
IMAGE_UID = 10001
#: host environment forwarded to nodes (as node processes inherit it): the project's own settings, minus
#: secrets and the image's paths, and the native thread-pool sizes (OpenMP, BLAS)
_FORWARD = re.compile(r"^(SMARTRECO_|OMP_|MKL_|OPENBLAS_)")
_NO_FORWARD = frozenset({"SMARTRECO_HOME"}) | EXECUTOR_SECRETS
#: node parameters that name a file the node writes (mounted read-write); other path parameters are read-only
_WRITABLE_PARAMS = frozenset({"store"})
#: node containers start slower than processes (eight wrappers importing at once on a small shared machine)
START_TIMEOUT_S = 240.0
#: files a SQLite store writes next to itself (checked for write access in a read-write mount)
_SQLITE_SIDE = ("-journal", "-wal", "-shm")
_PORT_ENV = ("PREDICTIVE_UNIT_HTTP_SERVICE_PORT", "PREDICTIVE_UNIT_GRPC_SERVICE_PORT",
             "PREDICTIVE_UNIT_METRICS_SERVICE_PORT")


class ContainerError(NodeStartError):
    """A docker command failed, or a node container exited / never became healthy."""


def _docker(args: list[str], timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise ContainerError("no `docker` CLI on PATH (serve --containers needs a Docker engine)") from None
    except subprocess.TimeoutExpired:
        raise ContainerError(f"docker {args[0]} did not answer within {timeout:.0f} s") from None
    if check and proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ContainerError(f"docker {args[0]} failed: {last}")
    return proc


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers() -> list[str]:
    """Remove node containers whose owning executor is gone; returns their names."""
    proc = _docker(["ps", "-a", "--filter", f"label={LABEL_KIND}={KIND}", "--format",
                    '{{.ID}} {{.Names}} {{.Label "' + LABEL_OWNER + '"}}'], check=False)
    stale = []
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2].isdigit() and not _pid_alive(int(parts[2])):
            stale.append((parts[0], parts[1]))
    if stale:
        _docker(["rm", "-f", *[cid for cid, _ in stale]], check=False)
    return [name for _, name in stale]


def remove_run(run_id: str) -> int:
    """Remove every container labelled with ``run_id`` (running or not); returns how many there were."""
    proc = _docker(["ps", "-aq", "--filter", f"label={LABEL_RUN}={run_id}"], check=False)
    ids = proc.stdout.split()
    if ids:
        _docker(["rm", "-f", *ids], timeout=120, check=False)
    return len(ids)


# ------------------------------------------------------------------------------------------ translation
def _cpus(value: str | int | float) -> str:
    text = str(value)
    return str(int(text[:-1]) / 1000) if text.endswith("m") else text


_MEM_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6, "G": 10**9}


def _memory(value: str | int) -> str:
    text = str(value)
    for unit, mult in _MEM_UNITS.items():
        if text.endswith(unit):
            return str(int(float(text[: -len(unit)]) * mult))
    return text


def _manifest_ports(node: GraphNodeSpec) -> tuple[int, int, int] | None:
    env = {e["name"]: e.get("value") for e in node.container.get("env") or []}
    try:
        ports = tuple(int(env[k]) for k in _PORT_ENV)
    except (KeyError, TypeError, ValueError):
        return None
    return ports  # type: ignore[return-value]


def _port_free(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _readable_problem(path: Path, uid: int) -> str | None:
    """Why user ``uid`` cannot reach ``path`` through its folders (mode bits only), or None."""
    if uid == os.geteuid() or uid == 0:
        return None
    for folder in [*reversed(path.parents), path]:
        try:
            st = folder.stat()
        except OSError:
            return None  # a missing path is the node's own error to report
        need = stat.S_IXOTH if folder.is_dir() else stat.S_IROTH
        if folder.is_dir() and folder == path:
            need |= stat.S_IROTH
        if st.st_uid != uid and not st.st_mode & need:
            return f"{folder} (mode {stat.filemode(st.st_mode)})"
    return None


def _writable_problem(folder: Path, uid: int, gid: int, files: tuple[Path, ...] = ()) -> str | None:
    """Why user ``uid`` cannot create files in ``folder`` and write ``files`` (and their SQLite side files)
    there (mode bits only), or None."""
    if uid == os.geteuid() or uid == 0:
        return None
    side = [Path(f"{f}{suffix}") for f in files for suffix in ("", *_SQLITE_SIDE)]
    for p in [folder, *(f for f in side if f.exists())]:
        st = p.stat()
        if st.st_uid == uid:
            ok = st.st_mode & stat.S_IWUSR
        elif st.st_gid == gid:
            ok = st.st_mode & stat.S_IWGRP
        else:
            ok = st.st_mode & stat.S_IWOTH
        if not ok:
            return f"{p} (owner {st.st_uid}, mode {stat.filemode(st.st_mode)})"
    return None


def _own_dedicated(folder: Path, uid: int, gid: int) -> None:
    """Hand a folder the launcher itself owns (runs/bandits) to the container user; only as root."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or uid == 0:
        return
    for p in [folder, *folder.iterdir()]:
        st = p.lstat()
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.lchown(p, uid, gid)


def _holds_project(folder: Path) -> bool:
    return (folder / "smartreco" / "__init__.py").exists() or (folder / "inference_graph" / "__init__.py").exists()


@dataclass
class Mount:
    path: Path  # same path on the host and in the container
    writable: bool = False
    files: tuple[Path, ...] = ()  # files the node writes there (checked for write access)

    def arg(self) -> str:
        return f"type=bind,source={self.path},target={self.path}" + ("" if self.writable else ",readonly")


def node_mounts(node: GraphNodeSpec, env: dict[str, str]) -> list[Mount]:
    """Host folders the node reads or writes: path parameters, mapped model URIs, PYTHONPATH entries."""
    out: dict[Path, bool] = {}
    written: dict[Path, list[Path]] = {}

    def add(raw: str, writable: bool) -> None:
        text = raw.removeprefix("file://").removeprefix("sqlite:///")
        if not text.startswith("/"):
            return
        path = Path(text)
        folder = path if path.is_dir() else path.parent
        if folder.exists() or writable:
            out[folder] = out.get(folder, False) or writable
            if writable and folder != path:
                written.setdefault(folder, []).append(path)

    mapped = {}
    if env.get("SMARTRECO_MODEL_URIS"):
        try:
            mapped = json.loads(env["SMARTRECO_MODEL_URIS"])
        except json.JSONDecodeError:
            mapped = {}
    for p in node.parameters:
        if p.get("type", "STRING") != "STRING":
            continue
        value = str(p["value"])
        add(str(mapped.get(value, value)), p["name"] in _WRITABLE_PARAMS)
    for entry in env.get("PYTHONPATH", "").split(os.pathsep):
        if entry:
            add(entry, False)
    for folder in [f for f in out if f.is_dir() and _holds_project(f)]:
        del out[folder]  # never shadow the image's own code with the checkout
    # folders nested in another mount come with it
    kept = {f: w for f, w in out.items() if not any(o != f and o in f.parents and (w <= out[o]) for o in out)}
    return [Mount(f, w, tuple(written.get(f, ()))) for f, w in sorted(kept.items())]


def _image_command(image: str) -> list[str]:
    """The image's ENTRYPOINT + CMD (what ``docker run IMAGE`` runs)."""
    proc = _docker(["image", "inspect", "-f", "{{json .Config.Entrypoint}} {{json .Config.Cmd}}", image], check=False)
    if proc.returncode != 0:
        raise ContainerError(f"image {image} not found (build it: `smartreco images build --only serving`)")
    entry, _, cmd = proc.stdout.strip().partition(" ")
    return [*(json.loads(entry) or []), *(json.loads(cmd) or [])]


@dataclass
class NodeContainer:
    node: GraphNodeSpec
    http_port: int
    grpc_port: int
    metrics_port: int
    name: str
    container_id: str
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    def state(self) -> str:
        """``running``, ``exited``, ``created``, ... or ``missing``."""
        proc = _docker(["inspect", "-f", "{{.State.Status}}", self.container_id], check=False)
        return proc.stdout.strip() if proc.returncode == 0 else "missing"

    def alive(self) -> bool:
        return self.state() == "running"

    def kill(self) -> None:
        """SIGKILL the node (the container stays, so ``restart`` brings it back on the same ports)."""
        _docker(["kill", self.container_id], check=False)

    def restart(self, timeout_s: float = 90.0) -> None:
        _docker(["start", self.container_id])
        wait_healthy([self], timeout_s)

    def save_logs(self) -> None:
        proc = _docker(["logs", self.container_id], check=False, timeout=30)
        if proc.returncode == 0:
            self.log_path.write_text(proc.stdout + proc.stderr)

    def logs_tail(self, chars: int = 1500) -> str:
        proc = _docker(["logs", "--tail", "40", self.container_id], check=False)
        return (proc.stdout + proc.stderr)[-chars:]

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop and remove the container (logs kept in ``log_path``)."""
        _docker(["stop", "-t", str(max(0, int(grace_s))), self.container_id], check=False, timeout=grace_s + 30)
        self.save_logs()
        _docker(["rm", "-f", self.container_id], check=False)


def wait_healthy(nodes: list[NodeContainer], timeout_s: float = 90.0,
                 stopping: threading.Event | None = None) -> None:
    """Block until each node answers /health/status with 200 (model loaded); fail fast when one exits
    or when ``stopping`` is set (serve stopped during start-up)."""
    pending = list(nodes)
    deadline = time.monotonic() + timeout_s
    next_state_check = 0.0
    while pending:
        if stopping is not None and stopping.is_set():
            raise ContainerError("stopped while the node containers were starting")
        for n in list(pending):
            try:
                with urllib.request.urlopen(n.url + "/health/status", timeout=1) as r:
                    if r.status == 200:
                        pending.remove(n)
            except OSError:
                pass
        if pending and time.monotonic() >= next_state_check:  # one docker call per node a second at most
            for n in pending:
                state = n.state()
                if state not in ("running", "created", "restarting"):
                    raise ContainerError(f"node {n.node.name} (container {n.name}) is {state}:\n{n.logs_tail()}")
            next_state_check = time.monotonic() + 1.0
        if pending and time.monotonic() > deadline:
            raise ContainerError(f"node containers not healthy after {timeout_s:.0f} s (no 200 from /health/status; "
                                 f"`docker logs NAME`): {[n.name for n in pending]}")
        if pending:
            time.sleep(0.2)


class ContainerGroup:
    """All node containers of a graph, one engine label per run; ``stop()`` always removes every one."""

    def __init__(
        self,
        nodes: list[GraphNodeSpec],
        log_dir: Path,
        extra_env: dict[str, str] | None = None,
        threads: int = 4,
        grpc_workers: int = 1,
        image: str | None = None,
        ports: str = "manifest",
        run_id: str | None = None,
    ) -> None:
        if ports not in ("manifest", "free"):
            raise SmartRecoError(f"node ports: must be 'manifest' or 'free', got {ports!r}")
        self.nodes = nodes
        self.log_dir = log_dir
        self.extra_env = extra_env or {}
        self.threads = threads
        self.grpc_workers = grpc_workers
        self.image = image
        self.ports = ports
        self.run_id = run_id or f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self.procs: dict[str, NodeContainer] = {}
        self.notes: list[str] = []
        # stop() may come from another thread while spawn() runs: no container is created after it
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    # ---------------------------------------------------------------------------------------- lifecycle
    def spawn(self) -> None:
        """Remove leftovers of dead executors, then ``docker run`` every node (detached)."""
        from smartreco.containers.engine import engine_problem

        problem = engine_problem(timeout=10.0)
        if problem:
            raise ContainerError(f"serve --containers: {problem}")
        gone = remove_leftovers()
        if gone:
            self.notes.append(f"removed {len(gone)} leftover node container(s) of a stopped executor")
        try:
            ports = self._choose_ports()
            for node in self.nodes:
                with self._lock:
                    if self._stopping.is_set():
                        raise ContainerError("stopped while the node containers were starting")
                    self.procs[node.name] = self._run(node, *ports[node.name])
        except BaseException:
            self.stop()
            raise

    def wait(self, timeout_s: float = START_TIMEOUT_S) -> None:
        try:
            wait_healthy(list(self.procs.values()), timeout_s, self._stopping)
        except BaseException:
            self.stop()
            raise

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        self.spawn()
        self.wait(timeout_s)

    def stop(self) -> None:
        """Keep each node's log, then remove every container of this run (by label: none is missed)."""
        self._stopping.set()
        with self._lock:
            for c in list(self.procs.values()):
                c.save_logs()
            remove_run(self.run_id)

    # ------------------------------------------------------------------------------------------- views
    def urls(self) -> dict[str, str]:
        return {name: c.url for name, c in self.procs.items()}

    def describe(self) -> dict[str, dict]:
        return {
            n: {"container": c.name, "id": c.container_id[:12], "http": c.http_port, "grpc": c.grpc_port,
                "metrics": c.metrics_port}
            for n, c in self.procs.items()
        }

    def dump(self) -> str:
        return json.dumps(self.describe())

    # ------------------------------------------------------------------------------------------ helpers
    def _choose_ports(self) -> dict[str, tuple[int, int, int]]:
        wanted = {n.name: _manifest_ports(n) for n in self.nodes}
        if self.ports == "manifest" and all(wanted.values()):
            flat = [p for ports in wanted.values() for p in ports]  # type: ignore[union-attr]
            busy = [p for p in flat if not _port_free(p)]
            if len(set(flat)) == len(flat) and not busy:
                return wanted  # type: ignore[return-value]
            self.notes.append(f"manifest ports busy ({busy[:5]}): using free ports instead")
        return {n.name: (free_port(), free_port(), free_port()) for n in self.nodes}

    def _user(self, node: GraphNodeSpec) -> tuple[int, int]:
        """The manifest's runAsUser/Group (default: the image's user); a non-root host user runs as itself,
        so bind mounts stay its own."""
        if os.geteuid() != 0:
            return os.geteuid(), os.getegid()
        sc = {**(node.pod.get("securityContext") or {}), **(node.container.get("securityContext") or {})}
        uid = int(sc.get("runAsUser", IMAGE_UID))
        return uid, int(sc.get("runAsGroup", uid))

    def _env(self, node: GraphNodeSpec, ports: tuple[int, int, int]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if _FORWARD.match(k) and k not in _NO_FORWARD}
        if os.environ.get("PYTHONPATH"):  # as node processes inherit it (its folders are mounted)
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        env.update({e["name"]: str(e.get("value", "")) for e in node.container.get("env") or [] if "name" in e})
        env.update({
            "MODEL_NAME": node.import_path,
            "PREDICTIVE_UNIT_ID": node.name,
            "PREDICTIVE_UNIT_IMAGE": self.image or node.image,
            "PREDICTIVE_UNIT_PARAMETERS": node.parameters_json(),
            "GUNICORN_WORKERS": "1",
            "GUNICORN_THREADS": str(self.threads),
            "GRPC_WORKERS": str(self.grpc_workers),
            "SELDON_LOG_LEVEL": settings.SELDON_LOG_LEVEL.get() or "WARNING",
            # the default arm store (runs/bandits) is shared with the host, mounted read-write
            "SMARTRECO_RUNS": str(runs_dir().resolve()),
            **self.extra_env,
        })
        env.update(dict(zip(_PORT_ENV, map(str, ports), strict=True)))
        # the image runs its own copy of the project: drop checkout folders from PYTHONPATH
        path = [e for e in env.get("PYTHONPATH", "").split(os.pathsep) if e and not _holds_project(Path(e))]
        if path:
            env["PYTHONPATH"] = os.pathsep.join(path)
        else:
            env.pop("PYTHONPATH", None)
        for secret in EXECUTOR_SECRETS:  # not even through extra_env / the manifest
            env.pop(secret, None)
        return env

    def _run(self, node: GraphNodeSpec, http: int, grpc: int, metrics: int) -> NodeContainer:
        image = self.image or node.image
        if not image:
            raise ContainerError(f"componentSpecs.{node.name}.image: required for serve --containers")
        uid, gid = self._user(node)
        env = self._env(node, (http, grpc, metrics))
        mounts = node_mounts(node, env)
        bandits = Path(env["SMARTRECO_RUNS"]) / "bandits"  # the default arm store's folder (ours to hand over)
        _own_dedicated(bandits, uid, gid)
        if not any(m.path == bandits for m in mounts):
            mounts.append(Mount(bandits, writable=True))
        # the nodes' shared state (SQLite): one file every node container sees, as a pod's shared /tmp on a cluster
        default_state = Path(env["SMARTRECO_RUNS"]) / "graph-state" / "state.sqlite"
        state = Path(env.get(settings.GRAPH_STATE.name) or default_state)
        if state.parent.name == default_state.parent.name:  # a dedicated "graph-state" folder: ours to hand over
            _own_dedicated(state.parent, uid, gid)
        if not any(m.path == state.parent for m in mounts):
            mounts.append(Mount(state.parent, writable=True, files=(state,)))
        for m in mounts:
            problem = _readable_problem(m.path, uid) or (
                _writable_problem(m.path, uid, gid, m.files) if m.writable else None)
            if problem:
                what = "writable" if m.writable else "readable"
                raise ContainerError(f"node {node.name}: {m.path} is not {what} by the container user {uid}: "
                                     f"{problem}; `chown {uid}` it or choose another folder")
        name = f"smartreco-{self.run_id}-{node.name}"
        args = ["run", "-d", "--name", name, "--network", "host", "--user", f"{uid}:{gid}",
                "--label", f"{LABEL_KIND}={KIND}", "--label", f"{LABEL_RUN}={self.run_id}",
                "--label", f"{LABEL_NODE}={node.name}", "--label", f"{LABEL_OWNER}={os.getpid()}"]
        args += self._security_args(node, uid, gid)
        args += self._resource_args(node)
        for m in mounts:
            args += ["--mount", m.arg()]
        for key, value in sorted(env.items()):
            args += ["--env", f"{key}={value}"]
        niceness = os.nice(0)
        if niceness > 0:  # containers do not inherit the launcher's niceness: run the image's command under nice
            args += ["--entrypoint", "nice", image, "-n", str(niceness), *_image_command(image)]
        else:
            args.append(image)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        proc = _docker(args, timeout=120, check=False)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            hint = " (build it: `smartreco images build --only serving`)" if "No such image" in last \
                or "pull access denied" in last or "Unable to find image" in proc.stderr else ""
            raise ContainerError(f"docker run of node {node.name} ({image}) failed: {last}{hint}")
        return NodeContainer(node, http, grpc, metrics, name, proc.stdout.strip(), self.log_dir / f"{node.name}.log")

    @staticmethod
    def _security_args(node: GraphNodeSpec, uid: int, gid: int) -> list[str]:
        sc = node.container.get("securityContext") or {}
        args: list[str] = []
        if sc.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        for cap in (sc.get("capabilities") or {}).get("drop") or []:
            args += ["--cap-drop", str(cap)]
        volumes = {v.get("name"): v for v in node.pod.get("volumes") or []}
        for vm in node.container.get("volumeMounts") or []:
            vol = volumes.get(vm.get("name")) or {}
            if "emptyDir" in vol:  # a pod's scratch folder: tmpfs owned by the node's user
                opts = f"{'ro' if vm.get('readOnly') else 'rw'},uid={uid},gid={gid},mode=0755"
                args += ["--tmpfs", f"{vm['mountPath']}:{opts}"]
        if sc.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        return args

    @staticmethod
    def _resource_args(node: GraphNodeSpec) -> list[str]:
        limits = (node.container.get("resources") or {}).get("limits") or {}
        args = []
        if "cpu" in limits:
            args += ["--cpus", _cpus(limits["cpu"])]
        if "memory" in limits:
            args += ["--memory", _memory(limits["memory"])]
        return args
