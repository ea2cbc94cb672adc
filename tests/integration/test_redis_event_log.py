"""The shared event log on Redis Streams (issue #18): idempotent appends from several writers, the same A/B
report as the local segment log, archive + trim that moves exactly the trimmed records to parquet (none
twice, also after an interrupted run), and nothing acknowledged lost when Redis (AOF always) is SIGKILLed."""

from __future__ import annotations

import json
import signal

import pyarrow.parquet as pq
import pytest

from smartreco.cli import main
from smartreco.events.eventlog import LocalEventLog, open_event_log
from smartreco.feedback import FEEDBACK, IMPRESSION, read_dataset
from smartreco.feedback.stream_log import (
    RedisStreamLog,
    _write_parquet,
    archive,
    archived_files,
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


def test_events_archive_cli_bounds_the_stream_and_read_dataset_still_sees_everything(tmp_path, redis_server,
                                                                                     monkeypatch, capsys):
    monkeypatch.setenv("SMARTRECO_EVENTS_ARCHIVE", str(tmp_path / "archive"))
    shared = open_event_log(redis_server.url)
    for kind, rec in traffic(30):
        shared.append(rec, kind)
    before = read_dataset(redis_server.url)
    assert main(["events", "archive", "--state", redis_server.url, "--keep", "5"]) == 0
    assert "stream holds 5" in capsys.readouterr().out
    assert RedisStreamLog(redis_server.url).stream_length() == 5
    assert read_dataset(redis_server.url).equals(before)
    assert main(["events", "archive", "--state", "/not/redis"]) == 1
    monkeypatch.delenv("SMARTRECO_STATE", raising=False)
    assert main(["events", "archive"]) == 0  # no shared state: the local log needs no archive
    assert "nothing to archive" in capsys.readouterr().out
