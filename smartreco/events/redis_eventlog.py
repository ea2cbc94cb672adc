"""The shared :class:`~smartreco.events.eventlog.EventLog`: Redis Streams (``SMARTRECO_STATE=redis://...``).

Every replica's event service appends to the same stream, so the log holds one impression per answer and
each acknowledged feedback once whichever replica handled it (the stream module says how appends are
durable and idempotent, and how the archive bounds the stream).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from smartreco import settings
from smartreco.feedback.log import AppendResult
from smartreco.feedback.stream_log import RedisStreamLog, iter_stream_records


class RedisEventLog:
    """:class:`EventLog` over one Redis stream (plus its parquet archive when reading)."""

    def __init__(self, url: str, *, archive_dir: str | None = None, **options: Any) -> None:
        self.url = url
        self.archive_dir = archive_dir if archive_dir is not None else str(settings.EVENTS_ARCHIVE.get())
        self._log = RedisStreamLog(url, **options)
        self._closed = False

    def append(self, record: Any, kind: str) -> AppendResult:
        return self._log.append(record, kind)

    def append_many(self, records: Iterable[Any], kind: str) -> list[AppendResult]:
        return self._log.append_many(records, kind)

    def records(self) -> Iterator[dict[str, Any]]:
        return iter_stream_records(self.url, self.archive_dir)

    def __len__(self) -> int:
        return len(self._log)

    def writable(self) -> bool:
        """Ready when Redis answers; a refused write answers 503 on its own (nothing acknowledged)."""
        return not self._closed and self._log.ping()

    def health(self) -> dict[str, Any]:
        return self._log.health()

    def close(self) -> None:
        self._closed = True
        self._log.close()
