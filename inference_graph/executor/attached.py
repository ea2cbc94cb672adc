"""Nodes that already run next to the executor (``--attach``): the containers of the same pod, as Seldon's
executor finds them, on the pod's loopback at the ports the SeldonDeployment gives each node
(``PREDICTIVE_UNIT_HTTP_SERVICE_PORT``). Same interface as ProcessGroup/ContainerGroup, but it starts and
stops nothing: the pod (a cluster's, or ``smartreco rehearse``'s) owns the nodes' lifecycle."""

from __future__ import annotations

import time
import urllib.request

from inference_graph.executor.graph import GraphNodeSpec
from inference_graph.executor.processes import LOOPBACK, NodeStartError

#: a pod's nodes load their bundles while the executor starts (seldon's executor waits on their readiness)
START_TIMEOUT_S = 600.0


def node_port(node: GraphNodeSpec) -> int:
    env = {e["name"]: e.get("value") for e in node.container.get("env") or []}
    raw = env.get("PREDICTIVE_UNIT_HTTP_SERVICE_PORT")
    try:
        return int(raw) if raw is not None else 9000
    except ValueError:
        raise NodeStartError(f"node {node.name}: PREDICTIVE_UNIT_HTTP_SERVICE_PORT={raw!r} is not a port") from None


class AttachedGroup:
    """The graph's nodes at ``127.0.0.1:<manifest port>``; ``wait`` blocks until each answers /health/status."""

    def __init__(self, nodes: list[GraphNodeSpec], host: str = LOOPBACK) -> None:
        self.nodes = nodes
        self.host = host
        self.ports = {n.name: node_port(n) for n in nodes}
        dup = sorted({p for p in self.ports.values() if list(self.ports.values()).count(p) > 1})
        if dup:
            raise NodeStartError(f"nodes share HTTP port(s) {dup}: in one pod each node needs its own")
        self.procs: dict[str, int] = dict(self.ports)

    def spawn(self) -> None:
        """Nothing to start: the pod runs the nodes."""

    def wait(self, timeout_s: float = START_TIMEOUT_S) -> None:
        pending = dict(self.urls())
        deadline = time.monotonic() + timeout_s
        while pending:
            for name, url in list(pending.items()):
                try:
                    with urllib.request.urlopen(url + "/health/status", timeout=2) as r:
                        if r.status == 200:
                            del pending[name]
                except OSError:
                    pass
            if pending and time.monotonic() > deadline:
                raise NodeStartError(f"nodes not ready after {timeout_s:.0f} s: {sorted(pending)}")
            if pending:
                time.sleep(0.5)

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        self.wait(timeout_s)

    def stop(self) -> None:
        """Nothing to stop: the nodes belong to the pod."""

    def urls(self) -> dict[str, str]:
        return {name: f"http://{self.host}:{port}" for name, port in self.ports.items()}

    def describe(self) -> dict[str, dict]:
        return {name: {"attached": url} for name, url in self.urls().items()}
