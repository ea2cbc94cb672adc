"""Start and stop every graph node as a ``seldon-core-microservice`` process on loopback.

Each node gets free REST/gRPC/metrics ports chosen at run time and its own process group, so the
whole tree (gunicorn workers, the gRPC server, the metrics manager) is stopped together: SIGTERM to
the main PID alone can leave gRPC listening but failing.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from inference_graph.executor.graph import GraphNodeSpec
from smartreco import settings
from smartreco.errors import SmartRecoError
from smartreco.paths import project_root
from smartreco.ports import free_port
from smartreco.processes import dying_with_parent

LOOPBACK = "127.0.0.1"


class NodeStartError(SmartRecoError):
    """A node process exited or never became healthy."""


@dataclass
class NodeProcess:
    node: GraphNodeSpec
    http_port: int
    grpc_port: int
    metrics_port: int
    proc: subprocess.Popen
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop the node's whole process group: TERM, then KILL after ``grace_s``."""
        if self.proc.poll() is not None and not _group_alive(self.proc.pid):
            return
        for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and _group_alive(self.proc.pid):
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=0.05)
            if not _group_alive(self.proc.pid):
                break
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=1)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie leader alone still "exists": look for any live member
    try:
        out = subprocess.run(
            ["ps", "-o", "stat=", "-g", str(pgid)], capture_output=True, text=True, timeout=2
        )
        return any(s and not s.startswith("Z") for s in out.stdout.split())
    except (OSError, subprocess.SubprocessError):
        return True


SELDON_ENV = settings.SELDON.name  # "apache": the Apache-2.0 seldon-core 1.17.1 venv; unset: this venv's 1.19
SELDON_VENV_ENV = settings.SELDON_VENV.name  # any venv holding seldon-core-microservice (wins over SELDON_ENV)
APACHE_VENV = ".venv-seldon-apache"


def microservice_bin() -> str:
    """The wrapper that runs the nodes; the node classes only use Seldon's method contract, so either works."""
    choice = settings.SELDON.get().lower() or "default"
    if choice not in ("default", "apache"):
        raise NodeStartError(f"{SELDON_ENV}: must be 'default' or 'apache', got {choice!r}")
    venv = settings.SELDON_VENV.get() or (str(project_root() / APACHE_VENV) if choice == "apache" else "")
    candidate = (Path(venv) / "bin" if venv else Path(sys.executable).parent) / "seldon-core-microservice"
    if not candidate.exists():
        hint = "run `bash scripts/setup.sh seldon-apache`" if venv else "use .venv-serving"
        raise NodeStartError(f"seldon-core-microservice not found at {candidate}; {hint}")
    return str(candidate)


#: the executor's secrets: a node never needs them (SECURITY.md O1), so they never reach a node's environment
EXECUTOR_SECRETS = frozenset({settings.API_TOKEN.name, settings.API_TOKEN_FILE.name})


def start_node(
    node: GraphNodeSpec,
    log_dir: Path,
    extra_env: dict[str, str] | None = None,
    threads: int = 4,
    grpc_workers: int = 1,
) -> NodeProcess:
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    root = str(project_root())
    env = {
        **os.environ,
        "PREDICTIVE_UNIT_ID": node.name,
        "PREDICTIVE_UNIT_IMAGE": node.image,
        "PREDICTIVE_UNIT_PARAMETERS": node.parameters_json(),
        "GUNICORN_WORKERS": "1",
        "GUNICORN_THREADS": str(threads),  # >1 also keeps connections alive
        "GRPC_WORKERS": str(grpc_workers),
        "SELDON_LOG_LEVEL": settings.SELDON_LOG_LEVEL.get() or "WARNING",
        "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p),
        "HOME": os.environ.get("HOME", root),
        **(extra_env or {}),
    }
    env = {k: v for k, v in env.items() if k not in EXECUTOR_SECRETS}  # not even through extra_env
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{node.name}.log"
    cmd = [
        microservice_bin(),
        node.import_path,
        "--http-port",
        str(http_port),
        "--grpc-port",
        str(grpc_port),
        "--metrics-port",
        str(metrics_port),
    ]
    cmd, preexec_fn = dying_with_parent(cmd)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec_fn,
        )
    return NodeProcess(node, http_port, grpc_port, metrics_port, proc, log_path)


def wait_healthy(procs: list[NodeProcess], timeout_s: float = 90.0) -> None:
    """Block until each node answers /health/status with 200 (its model loaded); fail fast on exit."""
    pending = list(procs)
    deadline = time.monotonic() + timeout_s
    while pending:
        for p in list(pending):
            if not p.alive():
                tail = p.log_path.read_text(errors="replace")[-1500:]
                raise NodeStartError(f"node {p.node.name} exited with {p.proc.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(p.url + "/health/status", timeout=1) as r:
                    if r.status == 200:
                        pending.remove(p)
            except OSError:
                pass
        if pending and time.monotonic() > deadline:
            raise NodeStartError(
                f"nodes not healthy after {timeout_s:.0f} s: {[p.node.name for p in pending]}"
            )
        if pending:
            time.sleep(0.2)


class ProcessGroup:
    """All node processes of a graph; ``stop()`` always stops every one of them."""

    def __init__(
        self,
        nodes: list[GraphNodeSpec],
        log_dir: Path,
        extra_env: dict[str, str] | None = None,
        threads: int = 4,
        grpc_workers: int = 1,
    ) -> None:
        self.nodes = nodes
        self.log_dir = log_dir
        self.extra_env = extra_env or {}
        self.threads = threads
        self.grpc_workers = grpc_workers
        self.procs: dict[str, NodeProcess] = {}

    def spawn(self) -> None:
        """Start every node (call from a long-lived thread: PDEATHSIG follows the forking thread)."""
        try:
            for node in self.nodes:
                self.procs[node.name] = start_node(
                    node, self.log_dir, self.extra_env, self.threads, self.grpc_workers
                )
        except BaseException:
            self.stop()
            raise

    def wait(self, timeout_s: float = 90.0) -> None:
        try:
            wait_healthy(list(self.procs.values()), timeout_s)
        except BaseException:
            self.stop()
            raise

    def start(self, timeout_s: float = 90.0) -> None:
        self.spawn()
        self.wait(timeout_s)

    def urls(self) -> dict[str, str]:
        return {name: p.url for name, p in self.procs.items()}

    def describe(self) -> dict[str, dict]:
        return {
            n: {"pid": p.proc.pid, "http": p.http_port, "grpc": p.grpc_port, "metrics": p.metrics_port}
            for n, p in self.procs.items()
        }

    def stop(self) -> None:
        for p in self.procs.values():
            p.stop()

    def dump(self) -> str:
        return json.dumps(self.describe())
