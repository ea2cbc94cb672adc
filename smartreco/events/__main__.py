"""``python -m smartreco.events --port 8080 --log-dir DIR``: run the event service (one process).

One process on purpose: the event log has a single writer (its directory is flock'd), so this never
forks workers; concurrency comes from asyncio and the group commit. ``--port 0`` picks a free port;
``--ready-file`` receives ``{"url": ..., "pid": ...}`` once the service accepts connections (for the
process that started it). SIGTERM/SIGINT finish the queued appends, then close the log.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
from pathlib import Path

from smartreco import settings
from smartreco.errors import SmartRecoError

DEFAULT_PORT = 8080


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m smartreco.events", description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 in a container)")
    ap.add_argument("--port", type=int, default=DEFAULT_PORT, help="HTTP port (0: a free one)")
    ap.add_argument("--log-dir", required=True, help="event log directory (fsync'd segments, one writer), or "
                    "redis://HOST:PORT/DB (the shared Redis stream; $SMARTRECO_STATE, when set, wins over a directory)")
    ap.add_argument("--ready-file", default=None, help="write {url, pid} here once serving")
    ap.add_argument("--max-body-bytes", type=int, default=1024 * 1024)
    ap.add_argument("--log-level", default=settings.LOG_LEVEL.get())
    return ap


def serve(
    host: str, port: int, log_dir: str, *, ready_file: str | None = None, max_body_bytes: int = 1024 * 1024,
    log_level: str = "info",
) -> None:  # fmt: skip
    """Open the log (fails fast if another process holds it), bind, serve until a signal."""
    import uvicorn

    from smartreco.events.app import create_app
    from smartreco.events.eventlog import open_event_log

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # SMARTRECO_STATE=redis://... (the manifests' ConfigMap): the Redis stream every replica shares
    state = settings.STATE.get()
    if state and not str(log_dir).startswith(("redis://", "rediss://", "unix://")):
        log_dir = state
    event_log = open_event_log(log_dir)
    app = create_app(event_log, max_body_bytes=max_body_bytes)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP; without it
    # Nagle holds a keep-alive response's body segment for the client's delayed ACK (~40 ms per request)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]

    class _Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets=sockets)
            if ready_file and not self.should_exit:
                tmp = Path(ready_file).with_name(Path(ready_file).name + ".tmp")
                tmp.write_text(json.dumps({"url": f"http://{host}:{bound}", "pid": os.getpid()}))
                os.replace(tmp, ready_file)

    config = uvicorn.Config(
        app, log_level=log_level.lower(), access_log=False, lifespan="on", timeout_graceful_shutdown=10
    )
    logging.getLogger(__name__).info("event service on http://%s:%d, log %s", host, bound, log_dir)
    _Server(config).run(sockets=[sock])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        serve(args.host, args.port, args.log_dir, ready_file=args.ready_file,
              max_body_bytes=args.max_body_bytes, log_level=args.log_level)  # fmt: skip
    except SmartRecoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
