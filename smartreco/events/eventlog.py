"""The event log behind the event service: a small protocol and its local backend.

The local backend is the single-writer, fsync'd segment log of :mod:`smartreco.feedback.log` (one
directory, flock'd by the one event-service process). A shared backend (Redis Streams, issue #18)
implements the same protocol: ``append_many`` durable before it returns and idempotent on the record
id (``kind:id``), ``records`` in log order, ``writable`` for the readiness probe.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from smartreco.feedback.log import AppendResult, FeedbackLog, iter_records


@runtime_checkable
class EventLog(Protocol):
    """Where impressions and feedback are appended; the one writer is the event service."""

    def append(self, record: Any, kind: str) -> AppendResult:
        """Validate (``smartreco.feedback.records.make_record``), write and make durable one record;
        a known ``kind:id`` is acknowledged with ``duplicate=True`` and not written again."""
        ...

    def append_many(self, records: Iterable[Any], kind: str) -> list[AppendResult]:
        """Group commit: every new record durable together before this returns."""
        ...

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record once (first of each id), oldest first."""
        ...

    def __len__(self) -> int:
        """Records in the log (distinct ids)."""
        ...

    def writable(self) -> bool:
        """The readiness answer: can appends succeed here at all (open, storage reachable)? A backend that
        repairs itself on the next append after a failed write stays writable while it is unhealthy."""
        ...

    def health(self) -> dict[str, Any]:
        """Details for the readiness body: ``healthy`` (the last write worked), ``error``, ``retry_after_s``."""
        ...

    def close(self) -> None: ...


class LocalEventLog:
    """:class:`EventLog` over one directory of fsync'd segments (the existing feedback log format, so
    ``read_dataset``, the retrain ingest, drift and ``smartreco ab report`` read it unchanged)."""

    def __init__(self, directory: str | os.PathLike[str], *, fsync: bool = True, **log_options: Any) -> None:
        """``log_options`` go to :class:`~smartreco.feedback.log.FeedbackLog` (retention, segment size,
        ``retry_after_s``, a fault-injecting ``opener`` in tests)."""
        self.directory = Path(directory)
        self._log = FeedbackLog(self.directory, fsync=fsync, **log_options)
        self._closed = False

    @property
    def recovery(self):
        """What opening the log repaired (torn tail truncated, corrupt lines skipped)."""
        return self._log.recovery

    def append(self, record: Any, kind: str) -> AppendResult:
        return self._log.append(record, kind=kind)

    def append_many(self, records: Iterable[Any], kind: str) -> list[AppendResult]:
        return self._log.append_many(records, kind=kind)

    def records(self) -> Iterator[dict[str, Any]]:
        return iter_records(self.directory)

    def __len__(self) -> int:
        return len(self._log)

    def writable(self) -> bool:
        return not self._closed and os.access(self.directory, os.W_OK)

    def health(self) -> dict[str, Any]:
        return self._log.health()

    def close(self) -> None:
        self._closed = True
        self._log.close()

    def __enter__(self) -> LocalEventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_event_log(target: str | os.PathLike[str], *, fsync: bool = True) -> EventLog:
    """The backend for ``--log-dir``: a directory path (local segments) or a ``redis://`` URL (the shared
    Redis Streams log, :mod:`smartreco.events.redis_eventlog`)."""
    text = str(target)
    if text.startswith(("redis://", "rediss://", "unix://")):
        from smartreco.events.redis_eventlog import RedisEventLog

        return RedisEventLog(text)
    return LocalEventLog(text, fsync=fsync)
