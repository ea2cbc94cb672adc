"""Free TCP ports for the servers this process starts (graph nodes, executors, feature servers, Redis).

Binding port 0 and closing the socket gives a port that is free *now*, not one that stays free: a second ask
before the first port is bound by its server can get the same number back. A graph start asks for three ports
per node (24 for the A/B graph) before any node binds, and once a feature transformer and a CB node were both
given 42851 in CI: one node's health check was answered by the other and requests for one reached the other
(the flaky ``test_graph_live_items`` run of session 10). So every port handed out here is remembered, and
the recent ones are never handed out again by this process.
"""

from __future__ import annotations

import socket
import threading
from collections import deque

LOOPBACK = "127.0.0.1"

#: how many recent ports stay reserved: far more than any graph start asks for before its servers bind, far
#: fewer than the kernel's ephemeral range (~28,000), so a long-lived process that restarts nodes never runs out
RECENT = 4096

_lock = threading.Lock()
_recent: deque[int] = deque()
_reserved: set[int] = set()


def free_port(host: str = LOOPBACK) -> int:
    """A port free on ``host`` now and not handed out by this process among the last :data:`RECENT`."""
    with _lock:
        for _ in range(RECENT):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((host, 0))
                port = int(s.getsockname()[1])
            if port not in _reserved:
                _reserved.add(port)
                _recent.append(port)
                if len(_recent) > RECENT:
                    _reserved.discard(_recent.popleft())
                return port
    raise OSError(f"no free port on {host} outside the {RECENT} handed out last")
