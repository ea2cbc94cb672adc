"""`smartreco events serve | archive`: the event service (same as `python -m smartreco.events`), and the
shared Redis stream's archiver."""

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


@events.command()
@click.option("--state", default=None, help="redis://HOST:PORT/DB of the shared stream (default: $SMARTRECO_STATE)")
@click.option("--archive-dir", default=None, help="parquet folder (default: $SMARTRECO_EVENTS_ARCHIVE)")
@click.option(
    "--older-than",
    "older_than_s",
    default=None,
    type=click.FloatRange(0),
    help="archive records older than this many seconds (default: $SMARTRECO_EVENTS_RETENTION_S)",
)
@click.option(
    "--keep",
    default=None,
    type=click.IntRange(0),
    help="and all but the newest this many, whatever their age (default: $SMARTRECO_EVENTS_MAX_ENTRIES)",
)
def archive(state: str | None, archive_dir: str | None, older_than_s: float | None, keep: int | None) -> None:
    """Move the shared Redis event stream's oldest records to a parquet file, then trim them from the stream
    (run it on a schedule, the CronJob hourly: the stream then holds the retention window, bounded by the
    record cap plus one interval's new records; readers read the archive, then the stream)."""
    from smartreco import settings
    from smartreco.errors import DataError
    from smartreco.feedback.stream_log import RedisStreamLog, is_redis_url
    from smartreco.feedback.stream_log import archive as run

    url = state or settings.STATE.get()
    if not url:  # the local segment log: nothing to archive (it has its own retention)
        click.echo("no shared state (--state / SMARTRECO_STATE unset): nothing to archive")
        return
    if not is_redis_url(url):
        raise DataError(f"--state {url}: expected a redis://HOST:PORT/DB URL")
    log = RedisStreamLog(url)
    try:
        res = run(
            log,
            archive_dir or settings.EVENTS_ARCHIVE.get(),
            older_than_s=settings.EVENTS_RETENTION_S.get() if older_than_s is None else older_than_s,
            keep=settings.EVENTS_MAX_ENTRIES.get() if keep is None else keep,
        )
    finally:
        log.close()
    where = res.path or "nothing to archive"
    click.echo(f"archived {res.archived} record(s) -> {where}; trimmed {res.trimmed}; stream holds {res.stream_length}")
