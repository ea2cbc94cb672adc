"""What every SIGKILL-under-load check shares, whatever process it kills (the event service, the executor):
client threads that count sent / acknowledged / duplicate feedback ids, the kill once enough acks are in,
and the audit of the segment log afterwards. Each check supplies only how its clients talk to its process
(:meth:`FeedbackLoad.send`), so the bookkeeping and the audit that decide "0 acknowledged records lost"
are written once."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from smartreco.feedback.dataset import read_dataset
from smartreco.feedback.log import iter_records
from smartreco.feedback.records import FEEDBACK, IMPRESSION


def feedback_id(i: int) -> str:
    return f"crash-{i}"


class FeedbackLoad:
    """Client threads sharing a counter (``n`` ids) or each given its own ids (a resend). Subclasses open a
    client in :meth:`connect` and send id ``i`` in :meth:`send`, returning ``(acked, duplicate)``; an
    exception in ``gone`` means the process is down and the thread stops."""

    gone: tuple[type[BaseException], ...] = (OSError,)

    def __init__(self, n: int) -> None:
        self.n = n
        self.lock = threading.Lock()
        self.next = 0
        self.sent: list[str] = []
        self.acked: list[str] = []
        self.duplicates: list[str] = []
        self.latencies_ms: list[float] = []
        self.errors = 0

    def connect(self) -> Any:
        raise NotImplementedError

    def close(self, client: Any) -> None:
        client.close()

    def send(self, client: Any, i: int) -> tuple[bool, bool]:
        raise NotImplementedError

    def _take(self) -> int | None:
        with self.lock:
            if self.next >= self.n:
                return None
            self.next += 1
            return self.next - 1

    def _ids(self, ids: list[int] | None) -> Iterator[int]:
        if ids is not None:
            yield from ids
            return
        while (i := self._take()) is not None:
            yield i

    def worker(self, ids: list[int] | None = None) -> None:
        client = self.connect()
        try:
            for i in self._ids(ids):
                with self.lock:
                    self.sent.append(feedback_id(i))
                started = time.perf_counter()
                acked, duplicate = self.send(client, i)
                with self.lock:
                    if not acked:
                        self.errors += 1
                        continue
                    self.acked.append(feedback_id(i))
                    self.latencies_ms.append((time.perf_counter() - started) * 1000)
                    if duplicate:
                        self.duplicates.append(feedback_id(i))
        except self.gone:
            return  # the process is gone: stop sending
        finally:
            self.close(client)

    def run(self, concurrency: int, ids: list[int] | None = None, timeout_s: float = 120.0) -> None:
        """Resend ``ids`` (split over the threads) and wait for them."""
        chunks = [ids[k::concurrency] for k in range(concurrency)] if ids is not None else [None] * concurrency
        threads = [threading.Thread(target=self.worker, args=(c,), daemon=True) for c in chunks]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=timeout_s)


def kill_under_load(pid: int, load: FeedbackLoad, concurrency: int, kill_after: int) -> dict[str, Any]:
    """Start ``concurrency`` client threads, SIGKILL ``pid`` once ``kill_after`` feedbacks are acknowledged
    (mid-stream: other appends are being written then), wait for the clients to notice."""
    threads = [threading.Thread(target=load.worker, daemon=True) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    killed = False
    while any(t.is_alive() for t in threads):
        if len(load.acked) >= kill_after:
            os.kill(pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.001)
    acked_at_kill = len(load.acked)
    load_s = time.perf_counter() - started
    for t in threads:
        t.join(timeout=60)
    return {"killed": killed, "acked_at_kill": acked_at_kill, "load_s": load_s}


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 3)


def audit_after_crash(log_dir: Path, load: FeedbackLoad, trial: dict[str, Any], recovery: Any) -> dict[str, Any]:
    """The counts that decide the check, read from the recovered log: every acknowledged id must be there
    (``missing_acked`` empty) and nothing stored twice."""
    records = list(iter_records(log_dir))
    raw = list(iter_records(log_dir, dedupe=False))
    present = {r["id"] for r in records if r["kind"] == FEEDBACK}
    frame = read_dataset(log_dir)
    acked = set(load.acked)
    load_s = trial["load_s"]
    return {
        "killed": trial["killed"],
        "sent": len(load.sent),
        "acked": len(acked),
        "acked_at_kill": trial["acked_at_kill"],
        "recovered": len(present & set(load.sent)),
        "missing_acked": sorted(acked - present),
        "impressions": sum(r["kind"] == IMPRESSION for r in records),
        "dataset_rows": len(frame),
        "dataset_feedback_rows": int((frame["event"] == FEEDBACK).sum()) if len(frame) else 0,
        "truncated_bytes": recovery.truncated_bytes,
        "corrupt": recovery.corrupt,
        "stored_twice": len(raw) - len(records),
        "acks_per_s": round(len(acked) / load_s, 1) if load_s else None,
        "ack_ms_p50": percentile(load.latencies_ms, 0.5),
        "ack_ms_p99": percentile(load.latencies_ms, 0.99),
    }


def resend_ids(before: FeedbackLoad) -> list[int]:
    return sorted(int(f.split("-")[1]) for f in set(before.sent))


def audit_after_resend(log_dir: Path, before: FeedbackLoad, retry: FeedbackLoad) -> dict[str, Any]:
    """After every sent id was sent again to a restarted process: the acknowledged ones must have come back
    as duplicates, every sent id must be stored, none twice."""
    records = list(iter_records(log_dir))
    raw = list(iter_records(log_dir, dedupe=False))
    present = {r["id"] for r in records if r["kind"] == FEEDBACK}
    return {
        "resent": len(retry.sent),
        "resent_acked": len(retry.acked),
        "resent_acked_before_not_duplicate": sorted(set(before.acked) - set(retry.duplicates)),
        "after_resend_all_sent_present": set(before.sent) <= present,
        "after_resend_stored_twice": len(raw) - len(records),
    }
