"""Assemble and run the local graph as a cluster would: the event service (its own process, the single
writer of the event log), the nodes (processes, containers or in-process), the executor's REST + gRPC
fronts with the request logger pointed at the event service; stop everything on the way out.

The executor itself keeps no product state: nodes reach the event service (``SMARTRECO_EVENTS_URL``) and
their shared state file (``SMARTRECO_GRAPH_STATE``) through their environment, as on a cluster; in-process
nodes through the same variables as their own overlay of this process's environment (InProcessTransport), which
stays untouched, so concurrent in-process graphs of one process each keep theirs."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from inference_graph.executor.attached import AttachedGroup
from inference_graph.executor.auth import load_token
from inference_graph.executor.containers import ContainerGroup
from inference_graph.executor.engine import GraphEngine
from inference_graph.executor.event_service import EventServiceProcess
from inference_graph.executor.graph import GraphSpec, load_graph, override_parameters
from inference_graph.executor.grpc_server import start_grpc
from inference_graph.executor.processes import LOOPBACK, ProcessGroup
from inference_graph.executor.request_logger import RequestLogger
from inference_graph.executor.rest import make_app
from inference_graph.executor.transport import InProcessTransport, RestTransport
from smartreco import settings
from smartreco.paths import runs_dir
from smartreco.ports import free_port

log = logging.getLogger(__name__)


@dataclass
class ServeConfig:
    manifest: str | None = None
    predictor: str | None = None
    fused: bool = False  # each arm as one HybridRecommender node (executor/fusion.py): 2 hops, not 5
    port: int = 0
    grpc_port: int = 0
    in_process: bool = False
    # the nodes already run on this host's loopback at their manifest ports (a pod's containers): start none
    attach: bool = False
    host: str = "127.0.0.1"  # the address the REST and gRPC fronts listen on (0.0.0.0 in a pod)
    containers: bool = False  # each node a container of the serving image (ContainerGroup), not a process
    container_image: str | None = None  # None: each node's image from the manifest
    container_ports: str = "manifest"  # manifest (when free) | free
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    # the ranking nodes' answer cache (their ``cache`` / ``cache_ttl_s`` parameters): local | redis://... | off
    cache: str = "local"
    cache_ttl_s: float = 30.0
    timeout_ms: float | None = None  # None: the deployment's seldon.io/rest-timeout
    node_threads: int = 4  # GUNICORN_THREADS per node (>1 also keeps connections alive)
    node_workers: int = 1  # GUNICORN_WORKERS per node
    grpc_workers: int = 1  # GRPC_WORKERS per node (0: no node gRPC server; the executor calls nodes over REST)
    log_dir: str | None = None
    ready_file: str | None = None
    node_env: dict[str, str] = field(default_factory=dict)  # extra environment for node processes
    push_feedback: bool = True  # the nodes' ``push_feedback`` parameter (Feast push source on feedback)
    feature_server: str | None = None  # the nodes' online store feature server (None: SMARTRECO_FEATURE_SERVER)
    # event log directory of the event service this starts (its single writer); None/"off": no event
    # service (library use, tests): nodes apply feedback but log nothing and the request logger is off.
    # ``python -m inference_graph.executor`` defaults it to runs_dir()/feedback.
    feedback_log: str | None = None
    events_url: str | None = None  # an event service already running elsewhere (instead of starting one)
    graph_state: str | None = None  # the nodes' shared state file (None: SMARTRECO_GRAPH_STATE's default)
    # redis://HOST:PORT/DB: every replica's shared state and event log (SMARTRECO_STATE); None: local defaults
    state: str | None = None
    # bearer token for REST/gRPC (SECURITY.md O1): from a secret file, else $SMARTRECO_API_TOKEN[_FILE];
    # ``api_token`` is for library use/tests only (never a CLI flag: argv is visible in ps)
    token_file: str | None = None
    api_token: str | None = field(default=None, repr=False)


#: node wrapper settings (overridable through ``node_env``): gunicorn's default keep-alive is 2 s, so an
#: idle pooled connection of the executor's client could be closed under it; keep it open longer than
#: the client's own keep-alive (RestTransport.KEEPALIVE_S)
# as manifests/base/platform/node-env.yaml: one OpenMP thread per node (a forked worker can hang loading
# LightGBM otherwise, and 2 cores gain nothing from more)
NODE_ENV_DEFAULTS = {"GUNICORN_KEEPALIVE": "60", "OMP_NUM_THREADS": "1"}

#: seconds calls in flight may take to finish once the executor is told to stop: Seldon's executor closes its REST
#: and gRPC listeners together on SIGTERM and drains for up to 15 s (executor/cmd/executor/main.go, seldon-core
#: 1.17-1.19; its --shutdown_delay flag stays 0, the operator never sets it), and the stand-in does the same
SHUTDOWN_DRAIN_S = 15.0


def default_feedback_log() -> str:
    return str(runs_dir() / "feedback")


def graph_version(graph: GraphSpec) -> str:
    desc = [(n.name, n.class_name, n.parameters) for n in graph.nodes()]
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:12]


def _launcher(cfg: ServeConfig) -> Any:
    """ProcessGroup, or ContainerGroup (same interface) bound to the container settings."""
    if not cfg.containers:
        return ProcessGroup
    return functools.partial(ContainerGroup, image=cfg.container_image, ports=cfg.container_ports)


class LocalGraph:
    """The running graph: engine, node processes (unless in-process) and the two servers."""

    def __init__(self, cfg: ServeConfig) -> None:
        self.cfg = cfg
        self.graph = load_graph(cfg.manifest, cfg.predictor, fused=cfg.fused)
        # serve's options are node parameters (only where a node has them: "*")
        node_params: dict[str, Any] = {"push_feedback": cfg.push_feedback}
        if cfg.cache != "local":
            node_params["cache"] = cfg.cache
        node_params["cache_ttl_s"] = cfg.cache_ttl_s
        override_parameters(self.graph, {"*": node_params})
        override_parameters(self.graph, cfg.overrides)
        self.processes: ProcessGroup | ContainerGroup | AttachedGroup | None = None
        self.engine: GraphEngine | None = None
        self.events: EventServiceProcess | None = None
        self.events_url: str | None = cfg.events_url
        self.request_logger: RequestLogger | None = None
        self._runner: web.AppRunner | None = None
        self._grpc: Any = None
        self.port = cfg.port
        self.grpc_port = cfg.grpc_port

    def _node_env(self) -> dict[str, str]:
        """What the nodes get from their pod spec on a cluster: the event service and the state file."""
        # blank = unset (settings): the nodes do not take these from the executor's own environment
        env = {settings.EVENTS_URL.name: self.events_url or "", settings.GRAPH_STATE.name: self.cfg.graph_state or "",
               settings.STATE.name: self.cfg.state or ""}
        if self.cfg.feature_server:
            env[settings.FEATURE_SERVER.name] = self.cfg.feature_server
        return env

    async def start(self) -> None:
        cfg = self.cfg
        token = cfg.api_token if cfg.api_token is not None else load_token(cfg.token_file)
        log_dir = Path(cfg.log_dir) if cfg.log_dir else runs_dir() / "graph-logs"
        if cfg.feedback_log and cfg.feedback_log != "off" and not self.events_url:
            # started from this thread: it dies with this process (PDEATHSIG), as the nodes do
            # with a shared state the event log is its Redis stream (every replica's event service appends there)
            self.events = EventServiceProcess(cfg.state or cfg.feedback_log, log_dir)
            self.events_url = self.events.start()
        node_env = {**self._node_env(), **cfg.node_env}
        if cfg.in_process:  # the nodes' environment as an overlay of their own: this process's stays as it is
            transport: Any = InProcessTransport(self.graph.nodes(), env=node_env)
        elif cfg.attach:  # the pod's own node containers: wait for them as Seldon's executor does
            self.processes = AttachedGroup(self.graph.nodes())
            await asyncio.to_thread(self.processes.wait)
            transport = RestTransport(self.processes.urls())
        else:
            self.processes = _launcher(cfg)(
                self.graph.nodes(),
                log_dir,
                extra_env={**NODE_ENV_DEFAULTS, "GUNICORN_WORKERS": str(cfg.node_workers), **node_env},
                threads=cfg.node_threads,
                grpc_workers=cfg.grpc_workers,
            )
            if cfg.containers:
                await asyncio.to_thread(self.processes.spawn)  # docker CLI calls: keep the loop free
            else:
                self.processes.spawn()  # PDEATHSIG follows the forking thread: spawn from this one
            await asyncio.to_thread(self.processes.wait)
            transport = RestTransport(self.processes.urls())
        self.port = self.port or free_port()
        if cfg.attach and any(n.logger for n in self.graph.nodes()):
            # in a pod: each node's logger.url as the manifest gives it (a Service name), as Seldon's executor
            self.request_logger = RequestLogger(
                source=f"http://{cfg.host}:{self.port}",
                deployment=self.graph.deployment,
                predictor=self.graph.predictor,
                namespace=self.graph.namespace,
            )
        elif self.events_url:
            self.request_logger = RequestLogger(
                source=f"http://{LOOPBACK}:{self.port}",
                deployment=self.graph.deployment,
                predictor=self.graph.predictor,
                namespace=self.graph.namespace,
                url_override=self.events_url.rstrip("/") + "/",
            )
        self.engine = GraphEngine(
            self.graph, transport, default_timeout_ms=cfg.timeout_ms, request_logger=self.request_logger
        )
        self.grpc_port = self.grpc_port or free_port()
        self._runner = web.AppRunner(
            make_app(self.engine, token=token), access_log=None, shutdown_timeout=SHUTDOWN_DRAIN_S
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, cfg.host, self.port).start()
        self._grpc = await start_grpc(self.engine, self.grpc_port, cfg.host, token=token)
        info = {
            "rest": f"http://{cfg.host}:{self.port}",
            "grpc": f"{cfg.host}:{self.grpc_port}",
            "in_process": cfg.in_process,
            "nodes_as": "in-process" if cfg.in_process else "containers" if cfg.containers
            else "attached" if cfg.attach else "processes",
            "auth": "bearer" if token else "off",
            "events": self.events_url,
            "feedback_log": cfg.feedback_log if self.events is not None else None,
            "nodes": self.processes.describe() if self.processes else {},
        }
        if cfg.ready_file:
            Path(cfg.ready_file).write_text(json.dumps(info))
        log.warning("graph ready: %s", json.dumps(info))

    async def stop(self) -> None:
        """Stop as Seldon's executor does on SIGTERM: both listeners close at once (no new connection from then
        on, REST or gRPC), calls in flight drain for up to :data:`SHUTDOWN_DRAIN_S`; then the node processes go."""
        try:
            closing = []
            if self._grpc is not None:
                closing.append(self._grpc.stop(grace=SHUTDOWN_DRAIN_S))
            if self._runner is not None:
                closing.append(self._runner.cleanup())
            await asyncio.gather(*closing)
            if self.request_logger is not None:
                await self.request_logger.close()
            if self.engine is not None:
                await self.engine.transport.close()
        finally:
            if self.processes is not None:
                await asyncio.to_thread(self.processes.stop)
            if self.events is not None:
                await asyncio.to_thread(self.events.stop)


async def serve_forever(cfg: ServeConfig) -> None:
    graph = LocalGraph(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    starting = asyncio.ensure_future(graph.start())
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # Ctrl-C/SIGTERM during start-up: stop now, not once every node is healthy
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
        else:
            starting.result()
            await stopped
    finally:
        stopped.cancel()
        await graph.stop()
