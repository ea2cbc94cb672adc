"""The event service next to the local graph, as a cluster runs it next to the SeldonDeployment: its own
process (``python -m smartreco.events``, the single writer of the event log), started before the nodes
and stopped after them. The local executor only knows its URL (the request logger's target, and the
nodes' ``SMARTRECO_EVENTS_URL``); it never touches the log.
"""

from __future__ import annotations

import sys
from pathlib import Path

from smartreco.errors import SmartRecoError
from smartreco.processes import ReadyFileProcess, ReadyProcessError


class EventServiceError(SmartRecoError):
    """The event service exited or never became ready."""


class EventServiceProcess:
    def __init__(
        self, log_dir: str | Path, workdir: str | Path, python: str | None = None, port: int = 0
    ) -> None:
        # a directory (the local segment log) or a redis:// URL (the shared stream): kept as given
        self.log_dir = log_dir if str(log_dir).startswith(("redis://", "rediss://", "unix://")) else Path(log_dir)
        self.port = int(port)  # 0: a free one
        self.workdir = Path(workdir)
        self.python = python or sys.executable
        self.proc: ReadyFileProcess | None = None
        self.url: str | None = None

    def start(self, timeout_s: float = 60.0) -> str:
        """Start it (it dies with this process) and wait until it accepts connections; its URL."""
        args = ["--port", str(self.port), "--log-dir", str(self.log_dir), "--log-level", "warning"]
        self.proc = ReadyFileProcess(
            "smartreco.events", args, self.workdir, name="event-service", python=self.python,
            die_with_parent=True,
        )  # fmt: skip
        try:
            self.url = str(self.proc.wait_ready(timeout_s)["url"])
        except ReadyProcessError as exc:
            raise EventServiceError(str(exc)) from exc
        return self.url

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM (it finishes queued appends and closes the log), SIGKILL after ``grace_s``."""
        if self.proc is not None:
            self.proc.stop(grace_s)
