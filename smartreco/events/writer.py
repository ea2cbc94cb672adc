"""Group commit in front of an :class:`~smartreco.events.eventlog.EventLog`, for an asyncio server.

Appends that arrive while a write+fsync is running queue up and go to the log together in the next
``append_many`` (one fsync per kind per batch), so concurrent feedback shares the disk flush instead
of queueing behind one flush each. The blocking write runs in a worker thread, so the event loop keeps
accepting requests. A caller's future resolves only after its record is durable; if the write fails,
every caller in that batch gets the exception (nothing is acknowledged) and the next batch tries again.

The queue is bounded (``max_pending`` appends waiting behind the running write): one more is refused at
once with :class:`WriterBusy` (the service answers 503 + ``Retry-After``), so a burst the disk cannot
keep up with is pushed back to its senders instead of growing memory or timing out unacknowledged.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from smartreco.events.eventlog import EventLog
from smartreco.feedback.log import AppendResult
from smartreco.feedback.records import FEEDBACK

log = logging.getLogger(__name__)


class LogClosing(RuntimeError):
    """The service is shutting down: the append was not taken."""


class WriterBusy(RuntimeError):
    """``max_pending`` appends already wait: this one was not taken (retry after ``retry_after_s``)."""

    def __init__(self, pending: int, retry_after_s: float) -> None:
        super().__init__(f"{pending} appends already queued for the event log")
        self.retry_after_s = retry_after_s


class GroupCommitWriter:
    def __init__(
        self, event_log: EventLog, max_batch: int = 512, max_pending: int = 8192, retry_after_s: float = 1.0
    ) -> None:
        self.log = event_log
        self.max_batch = int(max_batch)
        self.max_pending = int(max_pending)
        self.retry_after_s = float(retry_after_s)
        self.refused = 0  # appends refused with WriterBusy (back-pressure, nothing lost: never acknowledged)
        self._pending: list[tuple[str, dict[str, Any], asyncio.Future]] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._closing = False
        self.batches = 0
        self.records = 0
        self.failures = 0

    def start(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="event-log-writer")

    async def append(self, kind: str, record: dict[str, Any]) -> AppendResult:
        """Durable before this returns; ``duplicate`` when the id was already in the log. ``record`` must
        already be valid (``make_record``): one bad record would fail its whole batch."""
        if self._closing:
            raise LogClosing("the event log is closing")
        if len(self._pending) >= self.max_pending:
            self.refused += 1
            raise WriterBusy(len(self._pending), self.retry_after_s)
        self.start()
        fut = asyncio.get_running_loop().create_future()
        self._pending.append((kind, record, fut))
        self._wake.set()
        return await fut

    def _write(self, batch: list[tuple[str, dict[str, Any], asyncio.Future]]) -> list[AppendResult | Exception]:
        """Each kind's records in one ``append_many``; a kind whose write fails gets the exception for each
        of its records, without touching the results of a kind that was already durable."""
        results: list[AppendResult | Exception | None] = [None] * len(batch)
        for kind in (FEEDBACK, *sorted({k for k, _, _ in batch} - {FEEDBACK})):
            idx = [i for i, (k, _, _) in enumerate(batch) if k == kind]
            if not idx:
                continue
            try:
                written = self.log.append_many([batch[i][1] for i in idx], kind)
            except Exception as exc:  # disk full, fsync error, log closed: no ack for these records
                self.failures += 1
                log.error("event log append failed (%d %s record(s) not acknowledged): %s", len(idx), kind, exc)
                written = [exc] * len(idx)
            for i, res in zip(idx, written, strict=True):
                results[i] = res
        return results  # type: ignore[return-value]

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                try:
                    results = await asyncio.to_thread(self._write, batch)
                except BaseException as exc:  # cancelled while writing: nobody in the batch is acknowledged
                    for _, _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc if isinstance(exc, Exception) else LogClosing(repr(exc)))
                    raise
                self.batches += 1
                for (_, _, fut), res in zip(batch, results, strict=True):
                    if fut.done():
                        continue
                    if isinstance(res, Exception):
                        fut.set_exception(res)
                    else:
                        self.records += 1
                        fut.set_result(res)
            if self._closing:
                return

    async def close(self) -> None:
        """Finish what is queued (those callers still get their acks), then stop."""
        self._closing = True
        if self._task is not None:
            self._wake.set()
            await self._task
            self._task = None
