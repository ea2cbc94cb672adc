"""The event service's group commit: concurrent appends share one write, and a failing write
acknowledges nothing of its own kind while a kind already durable in the same batch keeps its acks."""

from __future__ import annotations

import asyncio

import pytest

from smartreco.events.eventlog import LocalEventLog
from smartreco.events.writer import GroupCommitWriter, LogClosing
from smartreco.feedback import FEEDBACK, IMPRESSION, iter_records

pytestmark = [pytest.mark.unit]


def fb(i: int) -> dict:
    return {"feedback_id": f"f{i}", "user_id": "1", "item_id": str(i), "interaction_type": "click"}


def imp(i: int) -> dict:
    return {"request_id": f"r{i}", "user_id": "1", "items": ["1", "2"]}


class FailingImpressions:
    """Feedback goes to a real log; every impression write fails (a disk error on the second fsync)."""

    def __init__(self, real: LocalEventLog) -> None:
        self.real = real
        self.calls: list[tuple[str, int]] = []

    def append_many(self, records, kind):
        records = list(records)
        self.calls.append((kind, len(records)))
        if kind == IMPRESSION:
            raise OSError(5, "Input/output error")
        return self.real.append_many(records, kind)


def test_a_failed_kind_fails_only_its_own_records(tmp_path):
    async def main():
        with LocalEventLog(tmp_path / "log") as real:
            log = FailingImpressions(real)
            writer = GroupCommitWriter(log)
            writer.start()
            # queued together before the writer task runs: one batch holding both kinds
            futs = [asyncio.ensure_future(writer.append(FEEDBACK, fb(i))) for i in range(5)]
            futs += [asyncio.ensure_future(writer.append(IMPRESSION, imp(i))) for i in range(3)]
            results = await asyncio.gather(*futs, return_exceptions=True)
            await writer.close()
            return log.calls, results, writer

    calls, results, writer = asyncio.run(main())
    assert calls == [(FEEDBACK, 5), (IMPRESSION, 3)]  # one group commit per kind
    assert [r.id for r in results[:5]] == [f"f{i}" for i in range(5)]
    assert all(isinstance(r, OSError) for r in results[5:])
    assert writer.records == 5 and writer.failures == 1
    assert sorted(r["id"] for r in iter_records(tmp_path / "log")) == [f"f{i}" for i in range(5)]


def test_appends_after_close_are_refused_not_lost(tmp_path):
    async def main():
        with LocalEventLog(tmp_path / "log") as real:
            writer = GroupCommitWriter(real)
            assert not (await writer.append(FEEDBACK, fb(1))).duplicate
            assert (await writer.append(FEEDBACK, fb(1))).duplicate
            await writer.close()
            with pytest.raises(LogClosing):
                await writer.append(FEEDBACK, fb(2))

    asyncio.run(main())
    assert [r["id"] for r in iter_records(tmp_path / "log")] == ["f1"]


class BlockingLog:
    """Feedback to a real log, each write held until the test releases it (a slow disk)."""

    def __init__(self, real: LocalEventLog) -> None:
        self.real = real
        self.entered = asyncio.Event()
        self.release: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def append_many(self, records, kind):
        import threading

        done = threading.Event()
        self.loop.call_soon_threadsafe(self.entered.set)
        asyncio.run_coroutine_threadsafe(self.release.wait(), self.loop).add_done_callback(lambda _: done.set())
        done.wait(30)
        return self.real.append_many(list(records), kind)


def test_a_full_queue_refuses_at_once_and_loses_nothing_it_took(tmp_path):
    from smartreco.events.writer import WriterBusy

    async def main():
        with LocalEventLog(tmp_path / "log") as real:
            log = BlockingLog(real)
            log.loop, log.release = asyncio.get_running_loop(), asyncio.Event()
            writer = GroupCommitWriter(log, max_pending=2, retry_after_s=2.0)
            first = asyncio.ensure_future(writer.append(FEEDBACK, fb(0)))
            await asyncio.wait_for(log.entered.wait(), 30)  # f0 is being written; the queue is empty
            queued = [asyncio.ensure_future(writer.append(FEEDBACK, fb(i))) for i in (1, 2)]
            await asyncio.sleep(0)
            with pytest.raises(WriterBusy) as busy:
                await writer.append(FEEDBACK, fb(3))
            log.release.set()
            results = await asyncio.gather(first, *queued)
            again = await writer.append(FEEDBACK, fb(3))  # the refused one, retried once there is room
            await writer.close()
            return busy.value, results, again, writer

    busy, results, again, writer = asyncio.run(main())
    assert busy.retry_after_s == 2.0 and writer.refused == 1
    assert [r.id for r in results] == ["f0", "f1", "f2"] and again.duplicate is False
    assert sorted(r["id"] for r in iter_records(tmp_path / "log")) == ["f0", "f1", "f2", "f3"]
