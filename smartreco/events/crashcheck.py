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

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from smartreco.events.client import EventClient, EventServiceUnavailable
from smartreco.events.cloudevents import RESPONSE
from smartreco.events.eventlog import LocalEventLog
from smartreco.feedback import FEEDBACK, IMPRESSION, iter_records, read_dataset
from smartreco.paths import project_root


class EventService:
    """One ``python -m smartreco.events`` process on a free loopback port."""

    def __init__(self, workdir: Path, log_dir: Path, python: str | None = None) -> None:
        self.ready = workdir / f"events-ready-{time.monotonic_ns()}.json"
        cmd = [python or sys.executable, "-m", "smartreco.events", "--port", "0", "--log-dir", str(log_dir),
               "--ready-file", str(self.ready), "--log-level", "warning"]  # fmt: skip
        root = str(project_root())
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        self.stderr = open(workdir / "events.stderr", "ab")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=self.stderr)

    def wait_ready(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"event service exited with {self.proc.returncode} before it was ready")
            if self.ready.exists():
                return json.loads(self.ready.read_text())["url"]
            time.sleep(0.05)
        self.kill()
        raise TimeoutError(f"event service not ready after {timeout:.0f} s")

    def kill(self, sig: int = signal.SIGKILL) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        return self.wait()

    def wait(self) -> int:
        rc = self.proc.wait(timeout=60)
        if not self.stderr.closed:
            self.stderr.close()
        return rc


def feedback_body(i: int) -> dict[str, Any]:
    return {"id": f"crash-{i}", "request_id": f"req-{i - i % 5}", "user_id": str(i % 53),
            "item_id": str(1 + i % 200), "interaction_type": "click", "reward": 1.0, "arm": "champion"}  # fmt: skip


def answer_message(i: int) -> dict[str, Any]:
    recs = [{"item_id": str(1 + (i + k) % 200), "score": 1.0 / (k + 1)} for k in range(5)]
    return {
        "jsonData": {"user_id": str(i % 53), "recommendations": recs, "variant": "champion", "model_version": "1"},
        "meta": {"tags": {"request_id": f"req-{i}"}},
    }


class _Load:
    """Client threads sharing a counter; records sent / acked / duplicate ids and ack latencies."""

    def __init__(self, url: str, n: int, impression_every: int) -> None:
        self.url, self.n, self.impression_every = url, n, impression_every
        self.lock = threading.Lock()
        self.next = 0
        self.sent: list[str] = []
        self.acked: list[str] = []
        self.duplicates: list[str] = []
        self.latencies_ms: list[float] = []
        self.impressions_acked = 0
        self.errors = 0

    def _take(self) -> int | None:
        with self.lock:
            if self.next >= self.n:
                return None
            self.next += 1
            return self.next - 1

    def worker(self, ids: list[int] | None = None) -> None:
        client = EventClient(self.url, timeout_s=30)
        queue = iter(ids) if ids is not None else None
        try:
            while True:
                i = next(queue, None) if queue is not None else self._take()
                if i is None:
                    return
                if self.impression_every and i % self.impression_every == 0:
                    out = client.log_event(RESPONSE, answer_message(i), request_id=f"puid-{i}", model_id="ab-router")
                    with self.lock:
                        self.impressions_acked += bool(out.get("stored"))
                fid = f"crash-{i}"
                with self.lock:
                    self.sent.append(fid)
                started = time.perf_counter()
                ack = client.append_feedback(feedback_body(i))
                with self.lock:
                    if ack.id == fid:
                        self.acked.append(fid)
                        self.latencies_ms.append((time.perf_counter() - started) * 1000)
                        if ack.duplicate:
                            self.duplicates.append(fid)
                    else:
                        self.errors += 1
        except EventServiceUnavailable:
            return  # the service is gone: stop sending
        finally:
            client.close()


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 3)


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
    url = svc.wait_ready(startup_timeout)
    load = _Load(url, n_feedback, impression_every)
    threads = [threading.Thread(target=load.worker, daemon=True) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    killed = False
    while any(t.is_alive() for t in threads):
        if len(load.acked) >= kill_after:
            os.kill(svc.proc.pid, signal.SIGKILL)  # mid-stream: other appends are being written now
            killed = True
            break
        time.sleep(0.001)
    acked_at_kill = len(load.acked)
    load_s = time.perf_counter() - started
    for t in threads:
        t.join(timeout=60)
    rc = svc.wait()

    reopened = LocalEventLog(log_dir)  # recovery: truncates a torn tail
    recovery = reopened.recovery
    reopened.close()
    records = list(iter_records(log_dir))
    raw = list(iter_records(log_dir, dedupe=False))
    present = {r["id"] for r in records if r["kind"] == FEEDBACK}
    frame = read_dataset(log_dir)
    acked = set(load.acked)
    result: dict[str, Any] = {
        "n_feedback": n_feedback,
        "concurrency": concurrency,
        "kill_after": kill_after,
        "killed": killed,
        "returncode": rc,
        "sent": len(load.sent),
        "acked": len(acked),
        "acked_at_kill": acked_at_kill,
        "recovered": len(present & set(load.sent)),
        "missing_acked": sorted(acked - present),
        "impressions": sum(r["kind"] == IMPRESSION for r in records),
        "impressions_acked": load.impressions_acked,
        "dataset_rows": len(frame),
        "truncated_bytes": recovery.truncated_bytes,
        "corrupt": recovery.corrupt,
        "stored_twice": len(raw) - len(records),
        "acks_per_s": round(len(acked) / load_s, 1) if load_s else None,
        "ack_ms_p50": _pct(load.latencies_ms, 0.5),
        "ack_ms_p99": _pct(load.latencies_ms, 0.99),
    }
    if resend:
        result.update(_resend(workdir, log_dir, python, startup_timeout, load, concurrency))
    return result


def _resend(
    workdir: Path, log_dir: Path, python: str | None, startup_timeout: float, before: _Load, concurrency: int
) -> dict[str, Any]:
    """Restart on the same log and retry every id that was sent: acked ones must be duplicates."""
    svc = EventService(workdir, log_dir, python)
    try:
        url = svc.wait_ready(startup_timeout)
        retry = _Load(url, 0, 0)
        ids = sorted(int(f.split("-")[1]) for f in set(before.sent))
        chunks = [ids[k::concurrency] for k in range(concurrency)]
        threads = [threading.Thread(target=retry.worker, args=(c,), daemon=True) for c in chunks]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        svc.kill(signal.SIGTERM)
    records = list(iter_records(log_dir))
    raw = list(iter_records(log_dir, dedupe=False))
    present = {r["id"] for r in records if r["kind"] == FEEDBACK}
    acked = set(before.acked)
    return {
        "resent": len(retry.sent),
        "resent_acked": len(retry.acked),
        "resent_acked_before_not_duplicate": sorted(acked - set(retry.duplicates)),
        "after_resend_all_sent_present": set(before.sent) <= present,
        "after_resend_stored_twice": len(raw) - len(records),
    }
