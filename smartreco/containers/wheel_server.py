"""Serve a wheelhouse to `docker build` over HTTP on the loopback interface, for the length of one build.

Why not `COPY wheels/` into the image: the classic builder keeps the copied wheels as a layer of the image (or of
a `deps` stage that then lingers as a dangling image) and sends them once more as build context, so building the
pipeline image needed ~6 GB of free disk for a 2.4 GB image; CI ran out of disk on it. Builds run with
`--network host`, so pip inside the build reaches this server on 127.0.0.1 and the wheels never enter a layer.

The port is fixed (:data:`DEFAULT_PORT`) where it is free, because the classic builder keys its layer cache on
the build arguments a RUN line sees: the same URL keeps the dependency layer cached across builds.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEFAULT_PORT = 38617
#: the file listing the served wheels with their sha256: the Dockerfile copies it before the pip RUN, so a
#: changed wheel set invalidates the dependency layer although the wheels themselves are not in the context
INDEX_NAME = "wheels.sha256"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        """pip fetches ~200 files per build: keep them out of the build's output."""


def write_wheel_index(wheels: Path, out: Path) -> str:
    """Write ``out`` (``<sha256>  <file name>`` per wheel, sorted) and return the digest of that listing."""
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}" for p in sorted(wheels.glob("*.whl"))]
    text = "\n".join(lines) + "\n"
    out.write_text(text)
    return hashlib.sha256(text.encode()).hexdigest()


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextmanager
def serve_wheels(wheels: Path, port: int = DEFAULT_PORT) -> Iterator[str]:
    """Serve ``wheels`` read-only on 127.0.0.1 (``port``, or any free port when it is taken); yields the
    ``--find-links`` URL. The server stops when the block ends, whatever the build's outcome."""
    handler = functools.partial(_QuietHandler, directory=str(wheels))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port if _free(port) else 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="wheel-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
