"""Crash check of the REAL executor process: SIGKILL it during a feedback load, then audit the log.

``python -m inference_graph.executor --in-process`` (the node classes in the executor process, to keep
it light) serves on loopback with the event service it starts (its own process, the single writer of
the event log: the feedback-appending node posts to it, and a feedback is acknowledged only after the
event service's fsync). SIGKILL of the executor takes its node classes down with it and makes the event
service stop (PDEATHSIG: SIGTERM, it finishes its queued appends). ``concurrency`` client threads send
feedback with unique ids (plus a prediction every ``predict_every`` requests, so impressions reach the
log through the request logger) over keep-alive HTTP. A feedback counts as acknowledged when its 200
carries its id back. After ``kill_after`` acks the executor gets SIGKILL mid-stream. Then the log is
reopened (torn-tail recovery) and read as a dataset: every acknowledged id must be there, and the log
must read cleanly. Optionally the executor is restarted on the same log and every sent id is retried:
the acknowledged ones must come back as duplicates (idempotency across the crash) and nothing may be
stored twice. Bounded (``n_feedback``) and loopback only. Used by the test and by
``benchmarks/feedback_executor_crash.py``.
"""

from __future__ import annotations

import http.client
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from smartreco.feedback.crashtrial import (
    FeedbackLoad,
    audit_after_crash,
    audit_after_resend,
    feedback_id,
    kill_under_load,
    resend_ids,
)
from smartreco.feedback.log import FeedbackLog, FeedbackLogError
from smartreco.processes import ReadyFileProcess, rest_host_port


class Executor(ReadyFileProcess):
    """One ``python -m inference_graph.executor`` process on free loopback ports."""

    def __init__(self, workdir: Path, log_dir: Path, overrides: dict, env: dict[str, str], python: str) -> None:
        args = ["--in-process", "--port", "0", "--grpc-port", "0", "--cache", "off", "--no-push",
                "--feedback-log", str(log_dir), "--set", json.dumps(overrides), "--log-dir", str(workdir / "logs"),
                "--graph-state", str(workdir / "graph-state.sqlite")]  # fmt: skip
        super().__init__("inference_graph.executor", args, workdir, name="executor", python=python, env=env)

    def wait_rest(self, timeout: float) -> tuple[str, int]:
        return rest_host_port(self.wait_ready(timeout))


def _feedback_body(i: int) -> dict:
    return {
        "feedback_id": feedback_id(i),
        "request": {"jsonData": {"user_id": str(i % 53)}},
        "reward": 1.0,
        "truth": {"item_id": str(1 + i % 200), "interaction_type": "click"},
    }


class _Load(FeedbackLoad):
    """Executor clients over keep-alive HTTP: a prediction every ``predict_every`` ids (its impression reaches
    the log through the request logger), and feedback acknowledged when its 200 carries its id back."""

    gone = (OSError, http.client.HTTPException)

    def __init__(self, host: str, port: int, n: int, predict_every: int) -> None:
        super().__init__(n)
        self.host, self.port, self.predict_every = host, port, predict_every
        self.predictions = 0

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=30)

    def send(self, conn: http.client.HTTPConnection, i: int) -> tuple[bool, bool]:
        if self.predict_every and i % self.predict_every == 0:
            body = {"jsonData": {"user_id": str(i % 53), "num_recommendations": 5}}
            status, _ = _post(conn, "/api/v1.0/predictions", body)
            with self.lock:
                self.predictions += status == 200
        status, out = _post(conn, "/api/v1.0/feedback", _feedback_body(i))
        tags = (out.get("meta") or {}).get("tags") or {}
        return status == 200 and tags.get("feedback_id") == feedback_id(i), bool(tags.get("duplicate"))


def _post(conn: http.client.HTTPConnection, path: str, body: dict) -> tuple[int, dict]:
    conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    raw = resp.read()
    return resp.status, (json.loads(raw) if raw else {})


def _reopen(log_dir: Path, timeout_s: float = 60.0) -> FeedbackLog:
    """The log, once the event service (stopping after the executor's death) has released it."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return FeedbackLog(log_dir)
        except FeedbackLogError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def run_executor_crash(
    workdir: Path,
    *,
    n_feedback: int,
    kill_after: int,
    overrides: dict,
    env: dict[str, str],
    concurrency: int = 8,
    predict_every: int = 5,
    resend: bool = True,
    python: str | None = None,
    startup_timeout: float = 120.0,
) -> dict[str, Any]:
    """One SIGKILL trial; returns the counts and what (if anything) was lost."""
    workdir.mkdir(parents=True, exist_ok=True)
    log_dir = workdir / "feedback"
    python = python or sys.executable
    ex = Executor(workdir, log_dir, overrides, env, python)
    host, port = ex.wait_rest(startup_timeout)
    load = _Load(host, port, n_feedback, predict_every)
    trial = kill_under_load(ex.pid, load, concurrency, kill_after)
    rc = ex.wait()

    reopened = _reopen(log_dir)  # recovery: truncates a torn tail
    recovery = reopened.recovery
    reopened.close()
    result: dict[str, Any] = {"n_feedback": n_feedback, "concurrency": concurrency, "kill_after": kill_after,
                              "returncode": rc, "predictions_answered": load.predictions,
                              **audit_after_crash(log_dir, load, trial, recovery)}
    if resend:
        result.update(_resend(workdir, log_dir, overrides, env, python, startup_timeout, load, concurrency))
    return result


def _resend(
    workdir: Path,
    log_dir: Path,
    overrides: dict,
    env: dict[str, str],
    python: str,
    startup_timeout: float,
    before: _Load,
    concurrency: int,
) -> dict[str, Any]:
    """Restart on the same log and retry every id that was sent: acked ones must be duplicates."""
    ex = Executor(workdir, log_dir, overrides, env, python)
    try:
        host, port = ex.wait_rest(startup_timeout)
        retry = _Load(host, port, 0, 0)
        retry.run(concurrency, resend_ids(before))
    finally:
        ex.kill(signal.SIGTERM)
    _reopen(log_dir).close()  # the event service has stopped and released the log
    return audit_after_resend(log_dir, before, retry)
