"""Crash benchmark of the REAL executor: SIGKILL ``python -m inference_graph.executor`` during a feedback
load, several times; count sent / acknowledged / recovered feedback and check the log reads cleanly.

    .venv-serving/bin/python benchmarks/feedback_executor_crash.py               # 6 kills x 1500 feedback
    .venv-serving/bin/python benchmarks/feedback_executor_crash.py --trials 2 --feedback 300

Each trial starts the executor with in-process nodes (fake bundle from tests/integration, so the number
measures the feedback path, not a model) and the event service it starts next to the graph (its own
process, the event log's single writer): the CF node appends each feedback through the event service
(fsync before its 200) before the router and the transformer apply theirs, so the executor's 200 means
durable. ``--concurrency`` keep-alive HTTP clients on loopback (one prediction every 5 feedbacks: its
impression reaches the log through the request logger, best effort), SIGKILL of the executor after a
random number of acks (the event service then stops on its parent's death, finishing queued appends),
the log reopened (torn-tail recovery) and read as a dataset, the executor restarted on the same log and
every sent id retried (acked ones must be duplicates). Bounded. The SIGKILL of the event service itself
is ``benchmarks/event_service_crash.py``. Results: benchmarks/results/feedback_executor_crash.{json,md}.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "integration"), str(ROOT / "benchmarks")]

import graph_fake_bundle as fake  # noqa: E402
from crash_trials import parse_args, run_trials, write_results  # noqa: E402

from smartreco.feedback.executor_crashcheck import run_executor_crash  # noqa: E402


def main() -> None:
    args = parse_args(__doc__)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        bundle = fake.write(Path(tmp) / "bundle")
        overrides = {"*": {"model_uri": str(bundle)}, "ab-router": {"store": str(Path(tmp) / "arms.sqlite")}}
        trials = run_trials(args, Path(tmp), lambda work, n, kill_after, concurrency: run_executor_crash(
            work, n_feedback=n, kill_after=kill_after, concurrency=concurrency, overrides=overrides,
            env=fake.node_env()))
    write_results(
        args, "feedback_executor_crash", "Executor crash benchmark (SIGKILL during feedback load)",
        "SIGKILL of `python -m inference_graph.executor --in-process` (nodes append feedback through the "
        "event service it starts) during a loopback feedback load", trials, started,
        ["Ack latency includes the walk through the graph's feedback nodes and the event service's fsync",
         "(group commit). `impressions` come from the request logger (asynchronous, best effort as Seldon's):",
         "the last few before a kill may be lost, never a feedback."],
    )


if __name__ == "__main__":
    main()
