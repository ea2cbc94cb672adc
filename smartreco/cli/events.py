"""`smartreco events serve`: the event service (same as `python -m smartreco.events`)."""

from __future__ import annotations

import click


@click.group()
def events() -> None:
    """The event service: Seldon request-logger CloudEvents and durable feedback into the event log."""


@events.command()
@click.option("--log-dir", required=True, help="event log directory (fsync'd segments, one writer)")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to bind (0.0.0.0 in a container)")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="0: a free port")
@click.option("--ready-file", default=None, help="write {url, pid} here once serving")
@click.option("--log-level", default="info", show_default=True)
def serve(log_dir: str, host: str, port: int, ready_file: str | None, log_level: str) -> None:
    """Serve until SIGTERM/Ctrl-C (needs the serving extra: starlette, uvicorn)."""
    from smartreco.events.__main__ import serve as run

    run(host, port, log_dir, ready_file=ready_file, log_level=log_level)
