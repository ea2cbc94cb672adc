"""A Service of the rehearsal: a small TCP proxy that listens on the Service's ports under the Service's names
(its container's network aliases) and sends each connection to the next *ready* endpoint, round-robin, as
kube-proxy does with a Service's Endpoints. Which pods are ready is not decided here: the rehearsal's kubelet
(:mod:`smartreco.rehearse.kubelet`) probes the pods as the manifests' probes say and writes the Service's
endpoints file, which this proxy re-reads when it changes (the Endpoints controller's job).

Standard library only, no project import: the rehearsal runs this file, bind-mounted read-only, with the Python of
a project image, so the proxy needs no image rebuild. Like kube-proxy in iptables mode it does not retry another
endpoint when the chosen one refuses: the client sees the failure (and retries, if it is written to). One JSON
line per connection on stdout (which pod got it, from which client address), so a test or a person can tell
which replica answered.

Endpoints file (written atomically by the kubelet)::

    {"generation": 7, "ports": {"8000": [{"pod": "smartreco-default-0", "ip": "172.18.0.5", "port": 8000}]}}
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import sys
import time

#: how often the endpoints file's modification is checked (seconds): the lag between the kubelet's decision
#: and the proxy following it is at most this
POLL_S = 0.2
CONNECT_TIMEOUT_S = 5.0
CHUNK = 65536


class Endpoints:
    """The Service's ready endpoints per port, reloaded when the file changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.stamp: tuple[int, int] | None = None
        self.ports: dict[int, list[dict]] = {}
        self.generation = -1
        self.counters: dict[int, itertools.count] = {}

    def reload(self) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self.ports:
                self.ports = {}
                return True
            return False
        stamp = (st.st_mtime_ns, st.st_ino)
        if stamp == self.stamp:
            return False
        try:
            with open(self.path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            return False  # a half-written file cannot happen (rename), but a bad one must not stop the Service
        self.stamp = stamp
        self.generation = int(data.get("generation", -1))
        self.ports = {int(p): list(eps) for p, eps in (data.get("ports") or {}).items()}
        return True

    def pick(self, port: int) -> dict | None:
        eps = self.ports.get(port) or []
        if not eps:
            return None
        counter = self.counters.setdefault(port, itertools.count())
        return eps[next(counter) % len(eps)]


def log(**fields: object) -> None:
    print(json.dumps({"t": round(time.time(), 3), **fields}, sort_keys=True), flush=True)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # half-close: the other direction may still carry the answer
    except (OSError, asyncio.IncompleteReadError):
        writer.close()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


class Proxy:
    def __init__(self, service: str, endpoints: Endpoints) -> None:
        self.service = service
        self.endpoints = endpoints
        self.seq = itertools.count(1)

    async def handle(self, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = next(self.seq)
        peer = writer.get_extra_info("peername") or ("?", 0)
        client = f"{peer[0]}:{peer[1]}"
        ep = self.endpoints.pick(port)
        if ep is None:  # no ready endpoint: refused, as a Service without endpoints is
            log(n=n, service=self.service, port=port, client=client, pod=None, error="no ready endpoint")
            await _close(writer)
            return
        log(n=n, service=self.service, port=port, client=client, pod=ep["pod"], endpoint=f"{ep['ip']}:{ep['port']}")
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(ep["ip"], int(ep["port"])), CONNECT_TIMEOUT_S
            )
        except (TimeoutError, OSError) as exc:
            log(n=n, service=self.service, pod=ep["pod"], error=f"connect: {type(exc).__name__}")
            await _close(writer)
            return
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            await _close(up_writer)
            await _close(writer)

    async def watch(self) -> None:
        while True:
            if self.endpoints.reload():
                shown = {p: [e["pod"] for e in eps] for p, eps in self.endpoints.ports.items()}
                log(service=self.service, generation=self.endpoints.generation, endpoints=shown)
            await asyncio.sleep(POLL_S)


async def serve(service: str, path: str, ports: list[int]) -> None:
    endpoints = Endpoints(path)
    endpoints.reload()
    proxy = Proxy(service, endpoints)
    servers = []
    for port in ports:

        async def on_connect(r: asyncio.StreamReader, w: asyncio.StreamWriter, port: int = port) -> None:
            await proxy.handle(port, r, w)

        servers.append(await asyncio.start_server(on_connect, "0.0.0.0", port, backlog=512))
    log(service=service, listening=ports)
    await proxy.watch()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="the rehearsal's Service proxy (ready endpoints only, round-robin)")
    ap.add_argument("--service", required=True)
    ap.add_argument("--endpoints", required=True, help="the endpoints file the rehearsal's kubelet writes")
    ap.add_argument("--port", type=int, action="append", required=True, help="a Service port (repeatable)")
    args = ap.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.service, args.endpoints, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
