"""Crash check of the feedback log: a writer process is SIGKILLed mid-stream; nothing it acknowledged
may be lost and the log must reopen cleanly. Used by the unit test and ``benchmarks/feedback_crash.py``.

The child reads JSON records from stdin, appends each with fsync and only then writes its id to
stdout (the acknowledgement). The parent counts sent / acked, kills the child with SIGKILL after a
random number of acks, reopens the log (torn-tail recovery) and checks every acked id is in it.
Loopback/pipes only, bounded by ``n_records``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from smartreco.feedback.log import FeedbackLog, iter_records


def _child(directory: str, payload_bytes: int) -> None:
    pad = "x" * payload_bytes
    with FeedbackLog(directory, max_segment_bytes=256 * 1024) as log:
        for line in sys.stdin:
            rec = json.loads(line)
            rec["session_id"] = pad  # bigger records make a torn write more likely
            res = log.append(rec)
            sys.stdout.write(res.id + "\n")
            sys.stdout.flush()


def run_trial(
    directory: Path,
    *,
    n_records: int,
    kill_after: int,
    start: int = 0,
    payload_bytes: int = 2000,
    python: str | None = None,
) -> dict[str, Any]:
    """One kill: returns sent/acked/recovered counts, missing acked ids and the recovery stats."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [
        python or sys.executable,
        "-c",
        f"from smartreco.feedback.crashcheck import _child; _child({str(directory)!r}, {payload_bytes})",
    ]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    sent = 0

    def feed() -> None:
        nonlocal sent
        try:
            for i in range(start, start + n_records):
                rec = {
                    "feedback_id": f"fb-{i}",
                    "user_id": str(i % 97),
                    "item_id": str(i % 1013),
                    "interaction_type": "click",
                    "reward": 1.0,
                }
                proc.stdin.write((json.dumps(rec) + "\n").encode())
                proc.stdin.flush()
                sent += 1
        except (BrokenPipeError, OSError):
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    acked: list[str] = []
    killed = False
    for line in proc.stdout:
        acked.append(line.decode().strip())
        if not killed and len(acked) >= kill_after:
            os.kill(proc.pid, signal.SIGKILL)  # mid-stream: the child is busy appending the next ones
            killed = True
    proc.wait()
    writer.join(timeout=10)
    acked = [a for a in acked if a]
    log = FeedbackLog(directory)  # recovery: truncates a torn tail
    recovery = log.recovery
    log.close()
    present = {r["id"] for r in iter_records(directory)}
    mine = {f"fb-{i}" for i in range(start, start + n_records)} & present
    missing = sorted(set(acked) - present)
    return {
        "sent": sent,
        "acked": len(acked),
        "killed": killed,
        "returncode": proc.returncode,
        "recovered": len(mine),
        "recovered_total": len(present),
        "missing_acked": missing,
        "truncated_bytes": recovery.truncated_bytes,
        "corrupt": recovery.corrupt,
    }
