"""Assemble and run the local graph: parse the manifest, start nodes (processes or in-process),
open the durable feedback log (this process is its one writer), serve REST + gRPC until stopped,
and stop every node process on the way out."""

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

from inference_graph.executor.auth import load_token
from inference_graph.executor.containers import ContainerGroup
from inference_graph.executor.engine import GraphEngine
from inference_graph.executor.feedback_writer import FeedbackWriter
from inference_graph.executor.graph import GraphSpec, load_graph, override_parameters
from inference_graph.executor.grpc_server import start_grpc
from inference_graph.executor.processes import LOOPBACK, ProcessGroup, free_port
from inference_graph.executor.rest import make_app
from inference_graph.executor.transport import InProcessTransport, RestTransport
from smartreco.feedback import FeedbackLog
from smartreco.paths import runs_dir
from smartreco.serving.cache import open_cache
from smartreco.serving.online_learning import OnlineLearner

log = logging.getLogger(__name__)


@dataclass
class ServeConfig:
    manifest: str | None = None
    predictor: str | None = None
    fused: bool = False  # each arm as one HybridRecommender node (executor/fusion.py): 2 hops, not 5
    port: int = 0
    grpc_port: int = 0
    in_process: bool = False
    containers: bool = False  # each node a container of the serving image (ContainerGroup), not a process
    container_image: str | None = None  # None: each node's image from the manifest
    container_ports: str = "manifest"  # manifest (when free) | free
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    cache: str = "local"  # local | redis://... | off
    cache_ttl_s: float = 30.0
    timeout_ms: float = 2000.0
    node_threads: int = 4  # GUNICORN_THREADS per node (>1 also keeps connections alive)
    node_workers: int = 1  # GUNICORN_WORKERS per node
    grpc_workers: int = 1  # GRPC_WORKERS per node (0: no node gRPC server; the executor calls nodes over REST)
    log_dir: str | None = None
    ready_file: str | None = None
    node_env: dict[str, str] = field(default_factory=dict)  # extra environment for node processes
    push_feedback: bool = True  # push feedback interactions to the online store (Feast push source)
    feature_server: str | None = None  # the online store's feature server (None: the client's default)
    # durable feedback + impression log directory; None/"off": not logged (library use, tests).
    # ``python -m inference_graph.executor`` defaults it to runs_dir()/feedback.
    feedback_log: str | None = None
    feedback_segment_bytes: int = 64 * 1024 * 1024
    sync_impressions: bool = False  # True: an answer waits for its impression's fsync
    online_users: int = 100_000  # users kept in the recent-history overlay (LRU)
    online_half_life_s: float = 3600.0  # popularity counters' decay
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


def default_feedback_log() -> str:
    return str(runs_dir() / "feedback")


def graph_version(graph: GraphSpec) -> str:
    desc = [(n.name, n.class_name, n.parameters) for n in graph.nodes()]
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:12]


def _online_pusher(url: str | None = None) -> Any:
    """``(user_id, item_id) -> None`` through the online client's push source; None without a client."""
    try:
        from smartreco.features.online_client import OnlineFeatureClient
    except ImportError:
        return None
    client = OnlineFeatureClient(url) if url else OnlineFeatureClient()
    return lambda user_id, item_id: client.push_interaction(user_id, item_id)


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
        override_parameters(self.graph, cfg.overrides)
        self.processes: ProcessGroup | ContainerGroup | None = None
        self.engine: GraphEngine | None = None
        self.writer: FeedbackWriter | None = None
        self._runner: web.AppRunner | None = None
        self._grpc: Any = None
        self.port = cfg.port
        self.grpc_port = cfg.grpc_port

    async def start(self) -> None:
        cfg = self.cfg
        token = cfg.api_token if cfg.api_token is not None else load_token(cfg.token_file)
        if cfg.in_process:
            transport: Any = InProcessTransport(self.graph.nodes())
        else:
            log_dir = Path(cfg.log_dir) if cfg.log_dir else runs_dir() / "graph-logs"
            self.processes = _launcher(cfg)(
                self.graph.nodes(),
                log_dir,
                extra_env={**NODE_ENV_DEFAULTS, "GUNICORN_WORKERS": str(cfg.node_workers), **cfg.node_env},
                threads=cfg.node_threads,
                grpc_workers=cfg.grpc_workers,
            )
            if cfg.containers:
                await asyncio.to_thread(self.processes.spawn)  # docker CLI calls: keep the loop free
            else:
                self.processes.spawn()  # PDEATHSIG follows the forking thread: spawn from this one
            await asyncio.to_thread(self.processes.wait)
            transport = RestTransport(self.processes.urls())
        cache = None if cfg.cache == "off" else open_cache(cfg.cache, cfg.cache_ttl_s)
        if cfg.feedback_log and cfg.feedback_log != "off":
            # opening recovers a torn tail left by a crash; a second writer fails fast (flock)
            log_ = FeedbackLog(cfg.feedback_log, max_segment_bytes=cfg.feedback_segment_bytes)
            if log_.recovery.truncated_bytes or log_.recovery.corrupt:
                log.warning("feedback log %s recovered: %s", cfg.feedback_log, log_.recovery)
            self.writer = FeedbackWriter(log_)
            self.writer.start()
        self.engine = GraphEngine(
            self.graph,
            transport,
            cache=cache,
            default_timeout_ms=cfg.timeout_ms,
            graph_version=graph_version(self.graph),
            writer=self.writer,
            sync_impressions=cfg.sync_impressions,
            learner=OnlineLearner(max_users=cfg.online_users, popularity_half_life_s=cfg.online_half_life_s),
        )
        if cfg.push_feedback:
            self.engine.push_interaction = _online_pusher(cfg.feature_server)
        self.port = self.port or free_port()
        self.grpc_port = self.grpc_port or free_port()
        self._runner = web.AppRunner(make_app(self.engine, token=token), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, LOOPBACK, self.port).start()
        self._grpc = await start_grpc(self.engine, self.grpc_port, LOOPBACK, token=token)
        info = {
            "rest": f"http://{LOOPBACK}:{self.port}",
            "grpc": f"{LOOPBACK}:{self.grpc_port}",
            "in_process": cfg.in_process,
            "nodes_as": "in-process" if cfg.in_process else "containers" if cfg.containers else "processes",
            "auth": "bearer" if token else "off",
            "feedback_log": str(self.writer.log.directory) if self.writer else None,
            "nodes": self.processes.describe() if self.processes else {},
        }
        if cfg.ready_file:
            Path(cfg.ready_file).write_text(json.dumps(info))
        log.warning("graph ready: %s", json.dumps(info))

    async def stop(self) -> None:
        try:
            if self._grpc is not None:
                await self._grpc.stop(grace=1)
            if self._runner is not None:
                await self._runner.cleanup()
            if self.engine is not None:
                await self.engine.transport.close()
            if self.writer is not None:
                await self.writer.close()
        finally:
            if self.processes is not None:
                await asyncio.to_thread(self.processes.stop)


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
