"""The event log on Redis Streams: the shared backend every replica's event service appends to.

Why Redis Streams: with several replicas (and several event services) the single-writer segment log of
:mod:`smartreco.feedback.log` cannot be shared; Redis serialises every append, so one stream holds one
copy of each record whoever wrote it.

- Durable before an acknowledgement: the Redis this runs against keeps an AOF with ``appendfsync
  always`` (the manifests and the durability benchmark start it so; Debian's Redis here is 7.0, which has
  no ``WAITAOF``): Redis writes and fsyncs the AOF before it sends a reply, so a returned append survives
  a SIGKILL of Redis.
- Idempotent: the id check and the ``XADD`` run in one Lua script (atomic), against a hash
  ``<prefix>:ids`` of ``kind:id -> stream id``; a known id is answered ``duplicate`` and not written.
- Bounded: :func:`archive` writes the oldest range of the stream to parquet files (one per run, named by
  the range's first and last stream ids), and only then trims that range (``XTRIM MINID``) and forgets
  its ids. ``smartreco events archive`` (hourly CronJob) archives what is older than
  ``SMARTRECO_EVENTS_RETENTION_S`` (24 h) and all but the newest ``SMARTRECO_EVENTS_MAX_ENTRIES``. The
  archive directory is the truth of what was archived: a run that crashed between writing
  and trimming is completed by the next run, never archived twice. Readers (:func:`iter_stream_records`,
  ``read_dataset`` / ``read_interactions``, ``smartreco ab report``) read the archive, then the stream.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smartreco.feedback.log import AppendResult, FeedbackLogUnavailable
from smartreco.feedback.records import FEEDBACK, make_record, record_key

DEFAULT_PREFIX = "smartreco:events"
#: archive file names: events-<first stream id>_<last stream id>.parquet (ids as "ms-seq")
_ARCHIVE_RE = re.compile(r"^events-(\d+-\d+)_(\d+-\d+)\.parquet$")

# KEYS[1] stream, KEYS[2] id hash; ARGV = key1, json1, key2, json2, ...; returns {written 0|1, stream id} each
_APPEND_LUA = """
local out = {}
for i = 1, #ARGV, 2 do
  local have = redis.call('HGET', KEYS[2], ARGV[i])
  if have then
    out[#out + 1] = {0, have}
  else
    local sid = redis.call('XADD', KEYS[1], '*', 'k', ARGV[i], 'r', ARGV[i + 1])
    redis.call('HSET', KEYS[2], ARGV[i], sid)
    out[#out + 1] = {1, sid}
  end
end
return out
"""


def is_redis_url(target: Any) -> bool:
    return isinstance(target, str) and target.startswith(("redis://", "rediss://", "unix://"))


def _sid(value: Any) -> tuple[int, int]:
    text = value.decode() if isinstance(value, bytes) else str(value)
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _sid_text(sid: tuple[int, int]) -> str:
    return f"{sid[0]}-{sid[1]}"


def connect(url: str, timeout_s: float = 2.0) -> Any:
    import redis  # lazy: only the shared backend needs it

    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)


class RedisStreamLog:
    """Append/read one stream; every method is safe from several processes and replicas at once."""

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX, timeout_s: float = 2.0,
                 retry_after_s: float = 1.0) -> None:  # fmt: skip
        import redis

        self.url = url
        self.stream, self.ids = prefix, f"{prefix}:ids"
        self.retry_after_s = float(retry_after_s)
        self._r = connect(url, timeout_s)
        self._script = self._r.register_script(_APPEND_LUA)
        self._errors = (redis.RedisError, OSError)
        self._error: str | None = None

    def append(self, record: Any, kind: str = FEEDBACK) -> AppendResult:
        return self.append_many([record], kind)[0]

    def append_many(self, payloads: Iterable[Any], kind: str = FEEDBACK) -> list[AppendResult]:
        """All new records in one atomic script (AOF fsync'd before Redis replies); FeedbackLogUnavailable
        (nothing acknowledged) when Redis is down, slow or refuses the write."""
        records = [make_record(kind, p) for p in payloads]
        if not records:
            return []
        argv: list[str] = []
        for rec in records:
            argv += [record_key(rec), json.dumps(rec, separators=(",", ":"), sort_keys=True, default=str)]
        try:
            out = self._script(keys=[self.stream, self.ids], args=argv)
        except self._errors as exc:
            self._error = f"{type(exc).__name__}: {exc}"
            raise FeedbackLogUnavailable(f"redis event log append failed ({self._error})", self.retry_after_s) from exc
        self._error = None
        return [AppendResult(rec["id"], rec["kind"], not int(w)) for rec, (w, _) in zip(records, out, strict=True)]

    def stream_records(self, *, batch: int = 1000) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(stream id, record)`` of what the stream holds now, oldest first."""
        start = "-"
        while True:
            rows = self._r.xrange(self.stream, min=start, max="+", count=batch)
            for sid, fields in rows:
                yield sid.decode(), json.loads(fields[b"r"])
            if len(rows) < batch:
                return
            last = _sid(rows[-1][0])
            start = _sid_text((last[0], last[1] + 1))

    def __len__(self) -> int:
        return int(self._r.hlen(self.ids))

    def stream_length(self) -> int:
        return int(self._r.xlen(self.stream))

    def ping(self) -> bool:
        try:
            return bool(self._r.ping())
        except self._errors:
            return False

    def health(self) -> dict[str, Any]:
        return {"healthy": self._error is None, "error": self._error, "retry_after_s": self.retry_after_s,
                "backend": "redis-stream"}  # fmt: skip

    def close(self) -> None:
        self._r.close()


# ------------------------------------------------------------------------------------------ archive
@dataclass(frozen=True)
class ArchiveResult:
    path: Path | None  # the parquet file written (None: nothing to archive)
    archived: int  # records written to it
    trimmed: int  # stream entries removed
    stream_length: int  # entries the stream still holds


def archived_files(directory: str | os.PathLike[str]) -> list[tuple[tuple[int, int], tuple[int, int], Path]]:
    """``(first id, last id, path)`` of every archive file, oldest range first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    out = []
    for path in directory.iterdir():
        m = _ARCHIVE_RE.match(path.name)
        if m:
            out.append((_sid(m.group(1)), _sid(m.group(2)), path))
    return sorted(out)


def _write_parquet(rows: list[tuple[str, dict[str, Any]]], path: Path) -> None:
    """One file, atomically (temp name, fsync, rename): columns stream_id, kind, id, ts, record (JSON)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "stream_id": [sid for sid, _ in rows],
        "kind": [str(rec.get("kind")) for _, rec in rows],
        "id": [str(rec.get("id")) for _, rec in rows],
        "ts": [str(rec.get("ts")) for _, rec in rows],
        "record": [json.dumps(rec, sort_keys=True, default=str) for _, rec in rows],
    })  # fmt: skip
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def archive(log: RedisStreamLog, directory: str | os.PathLike[str], *, older_than_s: float | None = None,
            keep: int | None = None, now: float | None = None,
            max_records: int = 1_000_000) -> ArchiveResult:  # fmt: skip
    """Write the stream's oldest entries to one parquet file, then trim them from the stream.

    What is archived: entries after the last archived one that are older than ``older_than_s`` (by their
    stream id's time against ``now``, default Redis' own ``TIME``: the clock that stamped the ids, so a
    skewed archiver clock moves nothing early), and also, whatever their age, all but the newest ``keep``
    (the backstop that bounds the stream when traffic outruns the age bound). Both are prefixes of the
    stream, so what is archived is one range; ``None`` turns that bound off (both off: only an interrupted
    run is completed). At most ``max_records`` per run. Order of effects: the file is durable first, then
    ``XTRIM MINID`` removes exactly the archived range and the ids of its records are forgotten (a retry
    of such an old id is appended again; readers keep the first of each id). A crash between the two is
    completed by the next run: it trims what the files already hold before archiving anything new; a
    failed write raises before anything is trimmed."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files = archived_files(directory)
    done_through = files[-1][1] if files else (0, 0)
    r = log._r
    trimmed = _trim_through(log, done_through) if files else 0  # finish an interrupted run first
    by_count = 0 if keep is None else max(0, int(r.xlen(log.stream)) - int(keep))  # all left are unarchived
    cutoff_ms = None
    if older_than_s is not None:
        if now is None:
            sec, usec = r.time()
            now = int(sec) + int(usec) / 1e6
        cutoff_ms = round((now - float(older_than_s)) * 1000)
    rows: list[tuple[str, dict[str, Any]]] = []
    start = _sid_text((done_through[0], done_through[1] + 1))
    more = True
    while more and len(rows) < max_records:
        chunk = r.xrange(log.stream, min=start, max="+", count=min(1000, max_records - len(rows)))
        if not chunk:
            break
        for sid, fields in chunk:
            if len(rows) >= by_count and (cutoff_ms is None or _sid(sid)[0] >= cutoff_ms):
                more = False  # this entry and every newer one stay
                break
            rows.append((sid.decode(), json.loads(fields[b"r"])))
        last = _sid(chunk[-1][0])
        start = _sid_text((last[0], last[1] + 1))
    if not rows:
        return ArchiveResult(None, 0, trimmed, int(r.xlen(log.stream)))
    path = directory / f"events-{rows[0][0]}_{rows[-1][0]}.parquet"
    _write_parquet(rows, path)
    trimmed += _trim_through(log, _sid(rows[-1][0]), [record_key(rec) for _, rec in rows])
    return ArchiveResult(path, len(rows), trimmed, int(r.xlen(log.stream)))


def _trim_through(log: RedisStreamLog, last: tuple[int, int], keys: list[str] | None = None) -> int:
    """Remove every entry up to and including ``last`` (and forget the ids of those records)."""
    r = log._r
    if keys is None:  # an interrupted run: the ids of what is still in the stream below the cutoff
        keys = [fields[b"k"].decode() for _, fields in r.xrange(log.stream, min="-", max=_sid_text(last))]
    if not keys and not r.xrange(log.stream, min="-", max=_sid_text(last), count=1):
        return 0
    pipe = r.pipeline(transaction=True)
    pipe.xtrim(log.stream, minid=_sid_text((last[0], last[1] + 1)), approximate=False)
    for i in range(0, len(keys), 1000):
        if keys[i : i + 1000]:
            pipe.hdel(log.ids, *keys[i : i + 1000])
    return int(pipe.execute()[0])


def iter_archive(directory: str | os.PathLike[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(stream id, record)`` of every archived record, oldest first."""
    import pyarrow.parquet as pq

    for _, _, path in archived_files(directory):
        table = pq.read_table(path, columns=["stream_id", "record"])
        for sid, rec in zip(table.column("stream_id").to_pylist(), table.column("record").to_pylist(), strict=True):
            yield sid, json.loads(rec)


def iter_stream_records(url: str, archive_dir: str | os.PathLike[str] | None = None, *,
                        dedupe: bool = True, prefix: str = DEFAULT_PREFIX) -> Iterator[dict[str, Any]]:  # fmt: skip
    """Every record of the shared log (the archive, then the stream), first of each id, oldest first.
    The stream part starts after the last archived entry, so a range both archived and not yet trimmed
    is read once."""
    seen: set[str] = set()
    last = (0, 0)
    if archive_dir is not None:
        for sid, rec in iter_archive(archive_dir):
            last = max(last, _sid(sid))
            key = record_key(rec)
            if dedupe and key in seen:
                continue
            seen.add(key)
            yield rec
    log = RedisStreamLog(url, prefix=prefix)
    try:
        for sid, rec in log.stream_records():
            if _sid(sid) <= last:
                continue
            key = record_key(rec)
            if dedupe and key in seen:
                continue
            seen.add(key)
            yield rec
    finally:
        log.close()
