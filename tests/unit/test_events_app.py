"""The event service's HTTP contract (Starlette app in process, real segment log on tmp_path):
400 naming the field, impressions idempotent on the request id, feedback acknowledged only after the
durable append (a failing log answers 503 + Retry-After and acknowledges nothing), duplicate ids."""

from __future__ import annotations

import json
import threading
import time

import pytest

pytestmark = [pytest.mark.unit, pytest.mark.serving]

starlette_testclient = pytest.importorskip("starlette.testclient")

from smartreco.events.app import create_app  # noqa: E402
from smartreco.events.cloudevents import FEEDBACK_SEEN, REQUEST, RESPONSE, seldon_headers  # noqa: E402
from smartreco.events.eventlog import LocalEventLog  # noqa: E402
from smartreco.feedback import iter_records, read_dataset  # noqa: E402
from smartreco.feedback.log import AppendResult  # noqa: E402
from smartreco.feedback.records import make_record, record_key  # noqa: E402


def answer(request_id: str, items=("10", "11", "12")) -> dict:
    recs = [{"item_id": i, "score": 1.0, "rank": n} for n, i in enumerate(items, 1)]
    return {
        "jsonData": {"user_id": "u1", "recommendations": recs, "variant": "champion", "model_version": "1"},
        "meta": {"tags": {"request_id": request_id}},
    }


def post_event(client, message, ce_type=RESPONSE, path="/", **headers):
    h = seldon_headers(ce_type, request_id="puid", model_id="ab-router")
    h.update(headers)
    return client.post(path, content=json.dumps(message), headers=h)


FEEDBACK = {"id": "fb-1", "request_id": "r1", "user_id": "u1", "item_id": "11", "interaction_type": "click",
            "reward": 1.0, "arm": "champion"}  # fmt: skip


@pytest.fixture()
def service(tmp_path):
    log = LocalEventLog(tmp_path / "events")
    with starlette_testclient.TestClient(create_app(log)) as client:
        yield client, tmp_path / "events"


def test_health_and_readiness(service):
    client, _ = service
    assert client.get("/health/ping").status_code == 200
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True and ready.json()["healthy"] is True


def test_impressions_are_idempotent_on_the_request_id(service):
    client, log_dir = service
    first = post_event(client, answer("r1"))
    assert first.status_code == 200 and first.json()["stored"] and not first.json()["duplicate"]
    again = post_event(client, answer("r1"), path="/api/v1/events")  # a new ce-id, the same answer
    assert again.status_code == 200 and again.json()["duplicate"]
    assert post_event(client, answer("r2")).json()["duplicate"] is False
    recs = list(iter_records(log_dir, dedupe=False))
    assert sorted(r["id"] for r in recs) == ["r1", "r2"] and all(r["kind"] == "impression" for r in recs)


def test_request_and_feedback_events_are_not_impressions(service):
    client, log_dir = service
    assert post_event(client, {"jsonData": {"user_id": "u1"}}, REQUEST).json()["stored"] is False
    assert post_event(client, {"reward": 1.0}, FEEDBACK_SEEN).json()["stored"] is False
    assert post_event(client, answer("r0", items=())).json()["reason"] == "no items"
    assert list(iter_records(log_dir)) == []
    stats = client.get("/api/v1/stats").json()
    assert (stats["request_events_dropped"], stats["feedback_events_seen"], stats["empty_answers"]) == (1, 1, 1)
    assert b'smartreco_events_received_total{outcome="dropped"' in client.get("/metrics").content


@pytest.mark.parametrize(
    ("headers", "body", "field"),
    [
        ({"ce-type": "bogus"}, answer("r1"), "ce-type"),
        ({"ce-id": ""}, answer("r1"), "ce-id"),
        ({}, {"jsonData": {"user_id": "u1", "recommendations": [{"rank": 1}]}}, "jsonData.recommendations[0].item_id"),
        ({}, {"jsonData": {"recommendations": [{"item_id": "1"}]}, "meta": {"tags": {"request_id": "r"}}},
         "jsonData.user_id"),
    ],
)  # fmt: skip
def test_invalid_events_are_400_naming_the_field(service, headers, body, field):
    client, log_dir = service
    resp = post_event(client, body, **headers)
    assert resp.status_code == 400 and resp.json()["field"] == field and field in resp.json()["error"]
    assert list(iter_records(log_dir)) == []


def test_feedback_is_acknowledged_once_and_a_duplicate_id_changes_nothing(service):
    client, log_dir = service
    first = client.post("/api/v1/feedback", json=FEEDBACK)
    assert first.status_code == 200
    assert first.json() == {"stored": True, "duplicate": False, "id": "fb-1", "offset": 1}
    again = client.post("/api/v1/feedback", json={**FEEDBACK, "reward": 0.0})  # a retry: the id decides
    assert again.status_code == 200 and again.json()["duplicate"] is True
    recs = list(iter_records(log_dir, dedupe=False))
    assert len(recs) == 1 and recs[0]["variant"] == "champion" and recs[0]["reward"] == 1.0
    df = read_dataset(log_dir)
    assert df.loc[0, "feedback_id"] == "fb-1" and df.loc[0, "request_id"] == "r1"


def _last_feedback_time(client) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("smartreco_feedback_log_last_append_timestamp_seconds "):
            return float(line.split()[1])
    raise AssertionError("no smartreco_feedback_log_last_append_timestamp_seconds on /metrics")


def test_the_last_stored_feedback_time_is_exported_for_the_log_lag_alert(service):
    client, _ = service
    assert _last_feedback_time(client) == 0.0
    before = time.time()
    assert client.post("/api/v1/feedback", json=FEEDBACK).status_code == 200
    stored = _last_feedback_time(client)
    assert before <= stored <= time.time()
    assert post_event(client, answer("r9")).status_code == 200  # an impression is no feedback
    assert client.post("/api/v1/feedback", json=FEEDBACK).json()["duplicate"]  # nor is a duplicate
    assert _last_feedback_time(client) == stored


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({k: v for k, v in FEEDBACK.items() if k != "id"}, "id"),
        ({**FEEDBACK, "user_id": None}, "user_id"),
        ({**FEEDBACK, "interaction_type": "stare"}, "interaction_type"),
        ({**FEEDBACK, "colour": "red"}, "colour"),
        ({**FEEDBACK, "reward": "lots"}, "reward"),
        ({**FEEDBACK, "reward": float("nan")}, "reward"),
        ({**FEEDBACK, "user_id": {"id": 1}}, "user_id"),
    ],
)
def test_invalid_feedback_is_400_naming_the_field(service, body, field):
    client, log_dir = service
    resp = client.post("/api/v1/feedback", content=json.dumps(body))  # json.dumps writes NaN as a client may
    assert resp.status_code == 400 and resp.json()["field"] == field
    assert list(iter_records(log_dir)) == []
    assert client.post("/api/v1/feedback", content=b"{oops").json()["field"] == "body"
    deep = client.post("/api/v1/feedback", content=b"[" * 100_000 + b"]" * 100_000)
    assert deep.status_code == 400 and deep.json()["field"] == "body"


class GatedLog:
    """An EventLog whose appends wait for the test (or fail): shows when the service answers."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.entered = threading.Event()
        self.release = threading.Event()
        self.stored: dict[str, dict] = {}

    def append(self, record, kind):
        return self.append_many([record], kind)[0]

    def append_many(self, records, kind):
        self.entered.set()
        self.release.wait(30)
        if self.fail:
            raise OSError(28, "No space left on device")
        out = []
        for payload in records:
            rec = make_record(kind, payload)
            dup = record_key(rec) in self.stored
            self.stored.setdefault(record_key(rec), rec)
            out.append(AppendResult(rec["id"], kind, dup))
        return out

    def records(self):
        return iter(self.stored.values())

    def __len__(self):
        return len(self.stored)

    def writable(self):
        return not self.fail

    def close(self):
        pass


def _post_in_thread(client, path, body):
    box: dict = {}
    t = threading.Thread(target=lambda: box.setdefault("resp", client.post(path, json=body)), daemon=True)
    t.start()
    return t, box


def test_feedback_gets_its_200_only_after_the_append_returned():
    log = GatedLog()
    with starlette_testclient.TestClient(create_app(log)) as client:
        t, box = _post_in_thread(client, "/api/v1/feedback", FEEDBACK)
        assert log.entered.wait(30)
        assert "resp" not in box and not log.stored  # the append is in progress: no answer yet
        log.release.set()
        t.join(30)
        assert box["resp"].status_code == 200 and "feedback:fb-1" in log.stored


def test_a_failing_log_answers_503_with_retry_after_and_acknowledges_nothing():
    log = GatedLog(fail=True)
    log.release.set()
    with starlette_testclient.TestClient(create_app(log)) as client:
        resp = client.post("/api/v1/feedback", json=FEEDBACK)
        assert resp.status_code == 503 and resp.headers["retry-after"] == "1"
        assert "stored" not in resp.json() and "OSError" in resp.json()["error"]
        assert post_event(client, answer("r9")).status_code == 503
        assert client.get("/health/ready").status_code == 503
        assert not log.stored
        # the service keeps running: once the disk is back the same id is stored (first time, not a duplicate)
        log.fail = False
        again = client.post("/api/v1/feedback", json=FEEDBACK)
        assert again.status_code == 200 and again.json()["duplicate"] is False


def test_retry_after_follows_the_logs_repair_back_off():
    from smartreco.feedback.log import FeedbackLogUnavailable

    log = GatedLog()
    log.release.set()

    def refuse(records, kind):
        raise FeedbackLogUnavailable("write failed earlier; repair in 2.5 s", retry_after_s=2.5)

    log.append_many = refuse
    with starlette_testclient.TestClient(create_app(log)) as client:
        resp = client.post("/api/v1/feedback", json=FEEDBACK)
    assert resp.status_code == 503 and resp.headers["retry-after"] == "3"


def test_a_failing_fsync_of_the_real_log_is_503_and_the_retry_stores_it_once(tmp_path):
    from smartreco.feedback.log import SegmentFile

    broken = {"on": False}

    class FlakyDisk(SegmentFile):
        def fsync(self) -> None:
            if broken["on"]:
                raise OSError(5, "Input/output error")
            super().fsync()

    log = LocalEventLog(tmp_path / "events", opener=FlakyDisk, retry_after_s=0.0, maintenance_interval_s=None)
    with starlette_testclient.TestClient(create_app(log)) as client:
        broken["on"] = True
        resp = client.post("/api/v1/feedback", json=FEEDBACK)
        assert resp.status_code == 503 and int(resp.headers["retry-after"]) >= 1
        ready = client.get("/health/ready")
        assert ready.status_code == 200 and ready.json()["healthy"] is False  # the next append repairs it
        assert list(iter_records(tmp_path / "events")) == []  # truncated back: nothing half-acknowledged
        broken["on"] = False
        again = client.post("/api/v1/feedback", json=FEEDBACK)
        assert again.status_code == 200 and again.json()["duplicate"] is False
        assert client.get("/health/ready").json()["healthy"] is True
    assert [r["id"] for r in iter_records(tmp_path / "events", dedupe=False)] == ["fb-1"]


def test_concurrent_feedback_is_all_stored_once(tmp_path):
    log = LocalEventLog(tmp_path / "events")
    with starlette_testclient.TestClient(create_app(log)) as client:
        threads = [
            _post_in_thread(client, "/api/v1/feedback", {**FEEDBACK, "id": f"fb-{i}"}) for i in range(24)
        ]
        deadline = time.monotonic() + 60
        for t, _ in threads:
            t.join(max(0.1, deadline - time.monotonic()))
        assert all(box["resp"].status_code == 200 for _, box in threads)
        stats = client.get("/api/v1/stats").json()
    assert stats["records"] == stats["appended"] == 24
    assert len(list(iter_records(tmp_path / "events", dedupe=False))) == 24


def test_grpc_traffic_arrives_as_protobuf_and_is_an_impression_too(service):
    from google.protobuf import json_format
    from seldon_core.proto import prediction_pb2

    client, log_dir = service
    pb = json_format.ParseDict(answer("r-grpc"), prediction_pb2.SeldonMessage())
    headers = seldon_headers(RESPONSE, request_id="puid", model_id="ab-router", content_type="application/protobuf")
    resp = client.post("/", content=pb.SerializeToString(), headers=headers)
    assert resp.status_code == 200 and resp.json()["stored"] is True
    [rec] = list(iter_records(log_dir))
    assert rec["id"] == "r-grpc" and rec["items"] == ["10", "11", "12"]
    bad = client.post("/", content=b"\xff\x00garbage", headers=headers)
    assert bad.status_code == 400 and bad.json()["field"] == "body"


def test_a_full_writer_queue_is_503_with_retry_after_and_the_retry_is_stored():
    log = GatedLog()
    app = create_app(log, max_pending=1)
    with starlette_testclient.TestClient(app) as client:
        t1, box1 = _post_in_thread(client, "/api/v1/feedback", {**FEEDBACK, "id": "q-1"})
        assert log.entered.wait(30)  # q-1 is being written
        t2, box2 = _post_in_thread(client, "/api/v1/feedback", {**FEEDBACK, "id": "q-2"})
        deadline = time.monotonic() + 30
        while len(app.state.writer._pending) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        busy = client.post("/api/v1/feedback", json={**FEEDBACK, "id": "q-3"})
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1" and "busy" in busy.json()["error"]
        log.release.set()
        t1.join(30), t2.join(30)
        assert box1["resp"].status_code == 200 and box2["resp"].status_code == 200
        again = client.post("/api/v1/feedback", json={**FEEDBACK, "id": "q-3"})
        assert again.status_code == 200 and again.json()["duplicate"] is False
        assert client.get("/api/v1/stats").json()["append_refused_busy"] == 1
    assert sorted(k for k in log.stored) == ["feedback:q-1", "feedback:q-2", "feedback:q-3"]
