"""The shared event log on Redis Streams (issue #18): idempotent appends from several writers, the same A/B
report as the local segment log, archive + trim that moves exactly the trimmed records to parquet (none
twice, also after an interrupted run), and nothing acknowledged lost when Redis (AOF always) is SIGKILLed."""

from __future__ import annotations

import errno
import json
import signal
import time

import pyarrow.parquet as pq
import pytest

from smartreco import settings
from smartreco.cli import main
from smartreco.events.eventlog import LocalEventLog, open_event_log
from smartreco.feedback import FEEDBACK, IMPRESSION, read_dataset, stream_log
from smartreco.feedback.stream_log import (
    RedisStreamLog,
    _write_parquet,
    archive,
    archived_files,
    iter_archive,
    iter_stream_records,
)
from smartreco.testing.redis_server import RedisServer

pytestmark = [pytest.mark.redis, pytest.mark.integration]


@pytest.fixture()
def redis_server(tmp_path):
    with RedisServer(tmp_path / "redis") as server:
        yield server


def traffic(n_requests: int = 40):
    """(kind, record) of an A/B experiment: answers over two arms, clicks and purchases on some."""
    out = []
    for i in range(n_requests):
        arm = "champion" if i % 2 else "challenger"
        day = f"2026-12-0{1 + i % 3}"
        out.append((IMPRESSION, {"request_id": f"r{i}", "user_id": str(i % 9), "variant": arm,
                                 "items": ["1", "2", "3"], "ts": f"{day}T10:00:00Z"}))  # fmt: skip
        if i % 3 != 0:
            kind = "purchase" if i % 5 == 0 else "click"
            out.append((FEEDBACK, {"feedback_id": f"f{i}", "request_id": f"r{i}", "user_id": str(i % 9),
                                   "item_id": "2", "interaction_type": kind, "variant": arm,
                                   "ts": f"{day}T10:05:00Z"}))  # fmt: skip
    return out


def test_appends_are_idempotent_across_writers(redis_server):
    a, b = open_event_log(redis_server.url), open_event_log(redis_server.url)  # two replicas' event services
    rec = {"feedback_id": "f1", "user_id": "u", "item_id": "2", "interaction_type": "click"}
    assert a.append(rec, FEEDBACK).duplicate is False
    assert b.append(rec, FEEDBACK).duplicate is True
    results = b.append_many([rec, {**rec, "feedback_id": "f2"}, {**rec, "feedback_id": "f2"}], FEEDBACK)
    assert [r.duplicate for r in results] == [True, False, True]  # a repeat inside one batch is one record
    assert len(a) == 2 and [r["id"] for r in a.records()] == [results[0].id, results[1].id]
    assert a.writable() and a.health()["healthy"]


def test_ab_report_is_the_same_from_either_backend(tmp_path, redis_server):
    with LocalEventLog(tmp_path / "local") as local:
        shared = open_event_log(redis_server.url)
        for kind, rec in traffic():
            local.append(rec, kind)
            shared.append(rec, kind)
    for name, logs in (("local", str(tmp_path / "local")), ("redis", redis_server.url)):
        assert main(["ab", "report", "--logs", logs, "--out", str(tmp_path / f"out-{name}")]) == 0
    for f in ("summary.json", "summary.md"):
        assert (tmp_path / "out-local" / f).read_text() == (tmp_path / "out-redis" / f).read_text(), f
    summary = json.loads((tmp_path / "out-redis/summary.json").read_text())
    assert summary["counts"]["impressions"] == 40


def test_archive_moves_exactly_the_trimmed_records_to_parquet_none_twice(tmp_path, redis_server, monkeypatch):
    monkeypatch.setenv("SMARTRECO_EVENTS_ARCHIVE", str(tmp_path / "archive"))
    log = RedisStreamLog(redis_server.url)
    records = traffic(60)
    for kind, rec in records[:50]:
        log.append(rec, kind)
    before = [sid for sid, _ in log.stream_records()]

    first = archive(log, tmp_path / "archive", keep=10)
    kept = [sid for sid, _ in log.stream_records()]
    assert first.archived == first.trimmed == len(before) - 10 and kept == before[-10:]
    table = pq.read_table(first.path)
    assert table.column("stream_id").to_pylist() == before[:-10]  # exactly the trimmed range

    # an archiver that died after writing its file but before trimming: the next run trims, re-archives nothing
    for kind, rec in records[50:]:
        log.append(rec, kind)
    pending = list(log.stream_records())[:5]
    _write_parquet(pending, tmp_path / "archive" / f"events-{pending[0][0]}_{pending[-1][0]}.parquet")
    second = archive(log, tmp_path / "archive", keep=10)
    assert second.trimmed == 5 + second.archived

    # the archive + the stream: every record once, in order; the stream bounded by `keep`
    files = archived_files(tmp_path / "archive")
    archived_ids = [sid for *_, p in files for sid in pq.read_table(p).column("stream_id").to_pylist()]
    assert len(archived_ids) == len(set(archived_ids)) == len(records) - 10
    assert log.stream_length() == 10
    everything = list(iter_stream_records(redis_server.url, tmp_path / "archive", dedupe=False))
    assert [r["id"] for r in everything] == [r["id"] for r in read_records(tmp_path, records)]
    assert len(read_dataset(redis_server.url)) == len(read_dataset(tmp_path / "local-copy"))


def read_records(tmp_path, records):
    """The same traffic through the local segment log: the reference order and ids."""
    with LocalEventLog(tmp_path / "local-copy") as local:
        for kind, rec in records:
            local.append(rec, kind)
        return list(local.records())


def test_sigkill_of_redis_loses_no_acknowledged_record(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    try:
        log = RedisStreamLog(server.url)
        acked = [log.append({"feedback_id": f"f{i}", "user_id": "u", "item_id": str(i),
                             "interaction_type": "click"}, FEEDBACK).id for i in range(200)]  # fmt: skip
        server.kill(signal.SIGKILL)
        with pytest.raises(Exception, match="redis event log append failed"):
            log.append({"feedback_id": "lost", "user_id": "u", "item_id": "1", "interaction_type": "click"}, FEEDBACK)
        server = RedisServer(tmp_path / "redis", port=server.port).start()  # same AOF folder
        stored = [r["id"] for r in iter_stream_records(server.url)]
        assert stored == acked
    finally:
        server.stop()


def _redis_now_ms(log: RedisStreamLog) -> int:
    sec, usec = log._r.time()
    return int(sec) * 1000 + int(usec) // 1000


def _after_redis_ms(log: RedisStreamLog, ms: int) -> None:
    """Wait (bounded) until Redis' clock is past ``ms``: the next ids are stamped later than every id so far."""
    deadline = time.monotonic() + 10
    while _redis_now_ms(log) <= ms:
        assert time.monotonic() < deadline, "Redis' clock did not move"
        time.sleep(0.002)


def _append_batch(log: RedisStreamLog, records) -> list[str]:
    for kind, rec in records:
        log.append(rec, kind)
    sids = [sid for sid, _ in log.stream_records()]
    _after_redis_ms(log, int(sids[-1].split("-")[0]) + 1)
    return sids


def test_archive_by_age_on_redis_clock_with_keep_as_backstop(tmp_path, redis_server):
    """The default retention's two bounds: records older than ``older_than_s`` go (by the stream id's time against
    Redis' own clock unless ``now`` is given), and ``keep`` caps the stream whatever the age; the archived range
    is exactly what left the stream, and a retry of a record still in the stream is still a duplicate."""
    log = RedisStreamLog(redis_server.url)
    records = traffic(30)
    old = _append_batch(log, records[:20])  # stamped at least 2 ms before the next batch
    every = _append_batch(log, records[20:])
    new = every[len(old) :]
    cutoff_s = int(new[0].split("-")[0]) / 1000  # the newer batch's first id time

    assert archive(log, tmp_path / "a", older_than_s=3600, keep=None).archived == 0  # nothing an hour old
    first = archive(log, tmp_path / "a", older_than_s=0, now=cutoff_s)  # older than the newer batch: the first
    assert first.archived == first.trimmed == len(old)
    assert pq.read_table(first.path).column("stream_id").to_pylist() == old
    assert [sid for sid, _ in log.stream_records()] == new
    kind, rec = records[-1]
    assert log.append(rec, kind).duplicate is True  # still in the stream: its id is still known

    capped = archive(log, tmp_path / "a", older_than_s=3600, keep=3)  # none old enough; the cap moves the rest
    assert capped.archived == len(new) - 3 and [sid for sid, _ in log.stream_records()] == new[-3:]
    everything = archive(log, tmp_path / "a", older_than_s=0)  # now = Redis TIME, past every id (waited above)
    assert everything.archived == 3 and everything.stream_length == 0
    assert [sid for sid, _ in iter_archive(tmp_path / "a")] == every


def test_archive_whose_file_cannot_be_written_trims_nothing(tmp_path, redis_server, monkeypatch):
    """Nothing acknowledged is lost: the stream is trimmed only after its file is durable; a failed write (a full
    disk) leaves the stream and its ids as they were, and the next run archives them."""
    log = RedisStreamLog(redis_server.url)
    for kind, rec in traffic(10):
        log.append(rec, kind)
    before = list(log.stream_records())

    def full_disk(rows, path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(stream_log, "_write_parquet", full_disk)
    with pytest.raises(OSError, match="No space left"):
        archive(log, tmp_path / "a", keep=0)
    assert list(log.stream_records()) == before and len(log) == len(before)
    assert archived_files(tmp_path / "a") == []
    monkeypatch.undo()
    done = archive(log, tmp_path / "a", keep=0)
    assert done.archived == len(before) and [sid for sid, _ in iter_archive(tmp_path / "a")] == [s for s, _ in before]


def test_events_archive_cli_bounds_the_stream_and_read_dataset_still_sees_everything(
    tmp_path, redis_server, monkeypatch, capsys
):
    monkeypatch.setenv("SMARTRECO_EVENTS_ARCHIVE", str(tmp_path / "archive"))
    monkeypatch.delenv("SMARTRECO_EVENTS_RETENTION_S", raising=False)
    monkeypatch.delenv("SMARTRECO_EVENTS_MAX_ENTRIES", raising=False)
    shared = open_event_log(redis_server.url)
    for kind, rec in traffic(30):
        shared.append(rec, kind)
    before = read_dataset(redis_server.url)
    n = RedisStreamLog(redis_server.url).stream_length()
    assert n < settings.EVENTS_MAX_ENTRIES.get()
    assert main(["events", "archive", "--state", redis_server.url]) == 0  # the defaults: fresh, under the cap
    assert f"archived 0 record(s) -> nothing to archive; trimmed 0; stream holds {n}" in capsys.readouterr().out
    monkeypatch.setenv("SMARTRECO_EVENTS_MAX_ENTRIES", "8")  # the CronJob's default comes from settings
    assert main(["events", "archive", "--state", redis_server.url]) == 0
    assert "stream holds 8" in capsys.readouterr().out
    assert main(["events", "archive", "--state", redis_server.url, "--keep", "5"]) == 0  # a flag wins
    assert "stream holds 5" in capsys.readouterr().out
    assert RedisStreamLog(redis_server.url).stream_length() == 5
    assert read_dataset(redis_server.url).equals(before)
    assert main(["events", "archive", "--state", redis_server.url, "--keep", "5", "--older-than", "0"]) == 0
    assert RedisStreamLog(redis_server.url).stream_length() < 5  # age or cap, whichever moves more
    assert read_dataset(redis_server.url).equals(before)
    assert main(["events", "archive", "--state", "/not/redis"]) == 1
    monkeypatch.delenv("SMARTRECO_STATE", raising=False)
    assert main(["events", "archive"]) == 0  # no shared state: the local log needs no archive
    assert "nothing to archive" in capsys.readouterr().out
