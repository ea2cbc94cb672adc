"""Crash check of the event service: SIGKILL ``python -m smartreco.events`` under a feedback load, then
audit the log. Used by the integration test and ``benchmarks/event_service_crash.py``.

``concurrency`` client threads (:class:`~smartreco.events.client.EventClient`, keep-alive, loopback)
append feedback with unique ids, and every ``impression_every``-th id also posts a logged answer as
Seldon's request logger would (a response CloudEvent: an impression). A feedback counts as
acknowledged when ``append_feedback`` returned. After ``kill_after`` acks the service gets SIGKILL
mid-stream. The log is reopened (torn-tail recovery) and read as a dataset: every acknowledged id must
be in it. Then the service is restarted on the same log and every sent id is sent again: the
acknowledged ones must come back as duplicates and nothing may be stored twice. Bounded, loopback only.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from smartreco.events.client import EventClient, EventServiceUnavailable
from smartreco.events.cloudevents import RESPONSE
from smartreco.events.eventlog import LocalEventLog
from smartreco.feedback.crashtrial import (
    FeedbackLoad,
    audit_after_crash,
    audit_after_resend,
    feedback_id,
    kill_under_load,
    resend_ids,
)
from smartreco.processes import ReadyFileProcess


class EventService(ReadyFileProcess):
    """One ``python -m smartreco.events`` process on a free loopback port."""

    def __init__(self, workdir: Path, log_dir: Path, python: str | None = None) -> None:
        args = ["--port", "0", "--log-dir", str(log_dir), "--log-level", "warning"]
        super().__init__("smartreco.events", args, workdir, name="events", python=python)

    def wait_url(self, timeout: float) -> str:
        return str(self.wait_ready(timeout)["url"])


def feedback_body(i: int) -> dict[str, Any]:
    return {"id": feedback_id(i), "request_id": f"req-{i - i % 5}", "user_id": str(i % 53),
            "item_id": str(1 + i % 200), "interaction_type": "click", "reward": 1.0, "arm": "champion"}  # fmt: skip


def answer_message(i: int) -> dict[str, Any]:
    recs = [{"item_id": str(1 + (i + k) % 200), "score": 1.0 / (k + 1)} for k in range(5)]
    return {
        "jsonData": {"user_id": str(i % 53), "recommendations": recs, "variant": "champion", "model_version": "1"},
        "meta": {"tags": {"request_id": f"req-{i}"}},
    }


class _Load(FeedbackLoad):
    """Event-service clients: every ``impression_every``-th id also posts a logged answer (an impression)."""

    gone = (EventServiceUnavailable,)

    def __init__(self, url: str, n: int, impression_every: int) -> None:
        super().__init__(n)
        self.url, self.impression_every = url, impression_every
        self.impressions_acked = 0

    def connect(self) -> EventClient:
        return EventClient(self.url, timeout_s=30)

    def send(self, client: EventClient, i: int) -> tuple[bool, bool]:
        if self.impression_every and i % self.impression_every == 0:
            out = client.log_event(RESPONSE, answer_message(i), request_id=f"puid-{i}", model_id="ab-router")
            with self.lock:
                self.impressions_acked += bool(out.get("stored"))
        ack = client.append_feedback(feedback_body(i))
        return ack.id == feedback_id(i), bool(ack.duplicate)


def run_event_service_crash(
    workdir: Path,
    *,
    n_feedback: int,
    kill_after: int,
    concurrency: int = 8,
    impression_every: int = 5,
    resend: bool = True,
    python: str | None = None,
    startup_timeout: float = 60.0,
) -> dict[str, Any]:
    """One SIGKILL trial; returns the counts and what (if anything) was lost."""
    workdir.mkdir(parents=True, exist_ok=True)
    log_dir = workdir / "events"
    svc = EventService(workdir, log_dir, python)
    url = svc.wait_url(startup_timeout)
    load = _Load(url, n_feedback, impression_every)
    trial = kill_under_load(svc.pid, load, concurrency, kill_after)
    rc = svc.wait()

    reopened = LocalEventLog(log_dir)  # recovery: truncates a torn tail
    recovery = reopened.recovery
    reopened.close()
    result: dict[str, Any] = {"n_feedback": n_feedback, "concurrency": concurrency, "kill_after": kill_after,
                              "returncode": rc, "impressions_acked": load.impressions_acked,
                              **audit_after_crash(log_dir, load, trial, recovery)}
    if resend:
        result.update(_resend(workdir, log_dir, python, startup_timeout, load, concurrency))
    return result


def _resend(
    workdir: Path, log_dir: Path, python: str | None, startup_timeout: float, before: _Load, concurrency: int
) -> dict[str, Any]:
    """Restart on the same log and retry every id that was sent: acked ones must be duplicates."""
    svc = EventService(workdir, log_dir, python)
    try:
        retry = _Load(svc.wait_url(startup_timeout), 0, 0)
        retry.run(concurrency, resend_ids(before))
    finally:
        svc.kill(signal.SIGTERM)
    return audit_after_resend(log_dir, before, retry)
