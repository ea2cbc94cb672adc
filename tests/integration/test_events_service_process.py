"""The event service as a process (`python -m smartreco.events`): the client's contract over real HTTP,
one writer per log, and a SIGKILL under feedback load that loses no acknowledged record (the small
version of benchmarks/event_service_crash.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.serving]

pytest.importorskip("uvicorn")

from smartreco.events.client import EventClient, EventServiceUnavailable, FeedbackRejected  # noqa: E402
from smartreco.events.cloudevents import RESPONSE  # noqa: E402
from smartreco.events.crashcheck import EventService, answer_message, feedback_body, run_event_service_crash  # noqa: E402
from smartreco.feedback import read_dataset  # noqa: E402


def test_client_contract_against_the_running_service(tmp_path):
    svc = EventService(tmp_path, tmp_path / "events")
    try:
        client = EventClient(svc.wait_url(60), timeout_s=10)
        ack = client.append_feedback(feedback_body(1))
        assert (ack.id, ack.duplicate) == ("crash-1", False)
        assert client.append_feedback(feedback_body(1)).duplicate is True
        with pytest.raises(FeedbackRejected) as err:
            client.append_feedback({**feedback_body(2), "interaction_type": "stare"})
        assert err.value.field == "interaction_type"
        out = client.log_event(RESPONSE, answer_message(5), request_id="puid-5", model_id="ab-router")
        assert out["stored"] is True and out["request_id"] == "req-5"
        # a second writer on the same log refuses to start instead of interleaving
        second = subprocess.run(
            [sys.executable, "-m", "smartreco.events", "--port", "0", "--log-dir", str(tmp_path / "events")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert second.returncode == 1 and "another process" in second.stderr
    finally:
        svc.kill()
    with pytest.raises(EventServiceUnavailable):
        client.append_feedback(feedback_body(3))  # the service is gone: no ack, a clear error
    df = read_dataset(tmp_path / "events")
    assert sorted(df["event"].unique()) == ["feedback", "impression"] and (df["event"] == "feedback").sum() == 1


def test_sigkill_under_feedback_load_loses_no_acknowledged_record(tmp_path):
    r = run_event_service_crash(tmp_path, n_feedback=400, kill_after=120, concurrency=8)
    assert r["killed"] and r["acked"] >= 120
    assert r["missing_acked"] == []
    assert r["corrupt"] == 0 and r["stored_twice"] == 0 and r["impressions"] > 0
    assert r["resent_acked_before_not_duplicate"] == [] and r["after_resend_all_sent_present"]
    assert r["after_resend_stored_twice"] == 0
