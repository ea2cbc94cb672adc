"""Feedback log under disk faults (EIO / ENOSPC in write, flush, fsync) and its bounded id index.

Faults are injected through the log's ``opener`` (a SegmentFile whose operations fail on demand), so
the real file underneath sees exactly the bytes a failing disk would have taken. Each scenario ends by
reopening the directory with a plain log: every acknowledged record is there, nothing else is torn."""

from __future__ import annotations

import errno
import json
import os
import time

import pytest

from smartreco.feedback import FeedbackLog, FeedbackLogUnavailable, iter_records
from smartreco.feedback.log import SegmentFile, list_segments

pytestmark = [pytest.mark.unit]


class Disk:
    """Which operation fails next, how often, with which errno; ``partial`` writes half the bytes."""

    def __init__(self) -> None:
        self.faults: dict[str, list[int]] = {}
        self.partial = True

    def fail(self, op: str, err: int, times: int = 1) -> None:
        self.faults.setdefault(op, []).extend([err] * times)

    def check(self, op: str) -> None:
        pending = self.faults.get(op)
        if pending:
            err = pending.pop(0)
            raise OSError(err, os.strerror(err))

    def opener(self, path):
        return FaultyFile(path, self)


class FaultyFile(SegmentFile):
    def __init__(self, path, disk: Disk) -> None:
        disk.check("open")
        super().__init__(path)
        self.disk = disk

    def write(self, data: bytes) -> None:
        if self.disk.faults.get("write"):
            if self.disk.partial:
                super().write(data[: len(data) // 2])  # the disk took part of it, then failed
            self.disk.check("write")
        super().write(data)

    def flush(self) -> None:
        self.disk.check("flush")
        super().flush()

    def fsync(self) -> None:
        self.disk.check("fsync")
        super().fsync()

    def truncate(self, size: int) -> None:
        self.disk.check("truncate")
        super().truncate(size)


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def fb(i: int) -> dict:
    return {"feedback_id": f"f{i}", "user_id": "1", "item_id": str(i), "interaction_type": "click"}


def _open(path, disk: Disk, clock: Clock, **kw) -> FeedbackLog:
    kw.setdefault("maintenance_interval_s", None)
    return FeedbackLog(path, opener=disk.opener, clock=clock, retry_after_s=1.0, **kw)


def _stored(path) -> list[str]:
    with FeedbackLog(path, maintenance_interval_s=None) as log:  # recovery as after a restart
        assert log.recovery.truncated_bytes == 0, "partial bytes were left behind"
        assert log.recovery.corrupt == 0
    return [r["id"] for r in iter_records(path, dedupe=False)]


@pytest.mark.parametrize("op", ["write", "flush", "fsync"])
@pytest.mark.parametrize("err", [errno.EIO, errno.ENOSPC], ids=["EIO", "ENOSPC"])
def test_a_failed_write_acknowledges_nothing_and_the_log_recovers(tmp_path, op, err):
    disk, clock = Disk(), Clock()
    log = _open(tmp_path, disk, clock)
    acked = [r.id for r in log.append_many([fb(i) for i in range(3)])]
    disk.fail(op, err)
    with pytest.raises(FeedbackLogUnavailable, match=os.strerror(err)) as failed:
        log.append_many([fb(3), fb(4)])
    assert failed.value.retry_after_s > 0
    assert not log.healthy and log.health()["healthy"] is False and log.health()["failures"] == 1
    assert "f3" not in log  # never acknowledged, so not in the idempotency index either
    with pytest.raises(FeedbackLogUnavailable, match="refused"):  # no ack until repaired
        log.append(fb(5))
    clock.t += 1.5  # past Retry-After: the next append repairs (truncate + fsync probe) first
    acked.append(log.append(fb(5)).id)
    assert log.healthy
    retry = log.append_many([fb(3), fb(4)])  # the client's retry of the failed batch is stored now
    assert [r.duplicate for r in retry] == [False, False]
    acked += [r.id for r in retry]
    log.close()
    assert _stored(tmp_path) == acked == ["f0", "f1", "f2", "f5", "f3", "f4"]


def test_a_disk_that_stays_broken_never_acknowledges_and_loses_nothing_acked(tmp_path):
    disk, clock = Disk(), Clock()
    log = _open(tmp_path, disk, clock)
    acked = [log.append(fb(i)).id for i in range(4)]
    disk.fail("write", errno.EIO)
    disk.fail("truncate", errno.EIO, times=100)  # cannot even cut the partial bytes
    disk.fail("fsync", errno.EIO, times=100)
    for i in range(10, 15):
        with pytest.raises(FeedbackLogUnavailable):
            log.append(fb(i))
        clock.t += 2  # each later append tries a repair, which fails
        assert not log.healthy
    log.close()
    with FeedbackLog(tmp_path, maintenance_interval_s=None) as reopened:  # the torn tail is cut on open
        assert reopened.recovery.truncated_bytes > 0
    assert [r["id"] for r in iter_records(tmp_path)] == acked


def test_a_failed_rotation_does_not_fail_the_acknowledged_append(tmp_path):
    disk, clock = Disk(), Clock()
    log = _open(tmp_path, disk, clock, max_segment_bytes=300)
    disk.fail("open", errno.ENOSPC)  # the next segment cannot be created
    results = [log.append(fb(i)) for i in range(6)]
    assert all(not r.duplicate for r in results) and log.healthy
    log.close()
    assert _stored(tmp_path) == [f"f{i}" for i in range(6)]


def test_ids_expire_after_the_retention_window_and_segments_rotate_by_age(tmp_path):
    clock = Clock()
    log = _open(tmp_path, Disk(), clock, max_segment_age_s=60, id_retention_s=3600)
    for hour in range(5):
        for i in range(20):
            log.append(fb(hour * 100 + i))
        clock.t += 3600
        stats = log.maintain()
        assert stats["rotated"] == 1 and stats["compacted_segments"] == 1
        assert len(log) <= 40  # at most the last hour's sealed segment + the active one
    assert len(list_segments(tmp_path)) == 6
    assert not log.append(fb(0)).duplicate  # older than the window: accepted again
    assert log.append(fb(400)).duplicate  # inside the window: still idempotent
    log.close()
    # a restart loads only the ids of the window
    with FeedbackLog(tmp_path, clock=clock, id_retention_s=3600, maintenance_interval_s=None) as again:
        assert len(again) <= 21
    caches = [json.loads(p.with_suffix(".ids").read_text()) for _, p in list_segments(tmp_path)[:-1]]
    assert all(c["compacted"] and "sealed_at" in c for c in caches)
    assert sum(1 for _ in iter_records(tmp_path)) == 100  # data stays: only the id index is bounded


def test_data_retention_deletes_whole_old_segments(tmp_path):
    clock = Clock()
    log = _open(tmp_path, Disk(), clock, max_segment_age_s=60, id_retention_s=60, data_retention_s=7200)
    for i in range(4):
        log.append(fb(i))
        clock.t += 3600
        log.maintain()
    assert [r["id"] for r in iter_records(tmp_path)] == ["f2", "f3"]
    log.close()


def test_maintenance_runs_on_its_own_schedule(tmp_path):
    """Not only called by a test: the log's own thread rotates and expires (bounded poll)."""
    with FeedbackLog(
        tmp_path, max_segment_age_s=0.01, id_retention_s=0.01, maintenance_interval_s=0.02
    ) as log:
        for i in range(5):
            log.append(fb(i))
        deadline = time.monotonic() + 10
        while (len(log) or len(list_segments(tmp_path)) < 2) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(log) == 0 and len(list_segments(tmp_path)) >= 2
    assert len(list(iter_records(tmp_path))) == 5
