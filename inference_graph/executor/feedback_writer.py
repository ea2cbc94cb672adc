"""Group commit in front of the durable feedback log: the executor is its one writer process.

Every feedback is awaited here before the client gets its 200; a served answer's impression is queued
before the answer leaves and awaited only in ``--impressions sync`` mode (see GraphEngine._log_impression).
Requests that arrive while a write+fsync is in progress queue up and are written together by the
next ``append_many`` (one fsync per kind per batch), so under load the fsync cost is shared instead
of serialising the event loop behind one disk flush per request. The fsync runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from smartreco.feedback import FEEDBACK, AppendResult, FeedbackLog, FeedbackLogError

log = logging.getLogger(__name__)


class FeedbackWriter:
    def __init__(self, feedback_log: FeedbackLog, max_batch: int = 512) -> None:
        self.log = feedback_log
        self.max_batch = int(max_batch)
        self._pending: list[tuple[str, Any, asyncio.Future]] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._closing = False
        self.batches = 0
        self.records = 0

    def start(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="feedback-writer")

    def submit(self, kind: str, payload: Any) -> asyncio.Future:
        """Queue a record now (synchronously: its place in the write order is fixed at this call); the
        future resolves once it is durable. Batches are written in queue order, so anything queued
        later (a feedback about this answer) is acknowledged only after this record is on disk."""
        if self._closing:
            raise FeedbackLogError(f"{self.log.directory}: feedback log is closing")
        self.start()
        fut = asyncio.get_running_loop().create_future()
        self._pending.append((kind, payload, fut))
        self._wake.set()
        return fut

    async def append(self, kind: str, payload: Any) -> AppendResult:
        """Durable (fsync'd) before this returns; ``duplicate`` when the id was already in the log."""
        return await self.submit(kind, payload)

    def _write(self, batch: list[tuple[str, Any, asyncio.Future]]) -> list[AppendResult]:
        results: list[AppendResult | None] = [None] * len(batch)
        for kind in (FEEDBACK, *sorted({k for k, _, _ in batch} - {FEEDBACK})):
            idx = [i for i, (k, _, _) in enumerate(batch) if k == kind]
            if idx:
                for i, res in zip(idx, self.log.append_many([batch[i][1] for i in idx], kind=kind), strict=True):
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
                except Exception as exc:  # disk full, log closed...: every waiter gets the error, no ack
                    log.error("feedback log append failed: %s", exc)
                    for _, _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                self.batches += 1
                self.records += len(batch)
                for (_, _, fut), res in zip(batch, results, strict=True):
                    if not fut.done():
                        fut.set_result(res)
            if self._closing:
                return

    async def close(self) -> None:
        """Finish what is queued, then close the log (releases its writer lock)."""
        if self._task is not None:
            self._closing = True
            self._wake.set()
            await self._task
            self._task = None
        await asyncio.to_thread(self.log.close)
