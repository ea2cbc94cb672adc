"""Crash benchmark of the EVENT SERVICE: SIGKILL ``python -m smartreco.events`` during a feedback load,
several times; count sent / acknowledged / recovered feedback and check the log reads cleanly.

    .venv-serving/bin/python benchmarks/event_service_crash.py               # 6 kills x up to 1500 feedback
    .venv-serving/bin/python benchmarks/event_service_crash.py --trials 2 --feedback 300

Each trial starts the service on a fresh log, drives ``--concurrency`` keep-alive ``EventClient``
threads on loopback (feedback with unique ids; every 5th id also posts a logged answer as Seldon's
request logger would, so impressions are in the log too), kills it with SIGKILL after a random number
of acks, reopens the log (torn-tail recovery), reads it as a dataset, restarts the service on the same
log and sends every sent id again (acked ones must be duplicates). Bounded, loopback only.
Results: benchmarks/results/event_service_crash.{json,md}.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from crash_trials import parse_args, run_trials, write_results  # noqa: E402

from smartreco.events.crashcheck import run_event_service_crash  # noqa: E402


def main() -> None:
    args = parse_args(__doc__)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        trials = run_trials(args, Path(tmp), lambda work, n, kill_after, concurrency: run_event_service_crash(
            work, n_feedback=n, kill_after=kill_after, concurrency=concurrency))
    write_results(
        args, "event_service_crash", "Event service crash benchmark (SIGKILL during feedback load)",
        "SIGKILL of `python -m smartreco.events` during a loopback feedback load (EventClient)", trials, started,
        ["Ack latency includes the fsync (group commit) and HTTP."],
    )


if __name__ == "__main__":
    main()
