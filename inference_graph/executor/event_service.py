"""The event service next to the local graph, as a cluster runs it next to the SeldonDeployment: its own
process (``python -m smartreco.events``, the single writer of the event log), started before the nodes
and stopped after them. The local executor only knows its URL (the request logger's target, and the
nodes' ``SMARTRECO_EVENTS_URL``); it never touches the log.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from inference_graph.executor.processes import _die_with_parent as die_with_parent
from smartreco.errors import SmartRecoError
from smartreco.paths import project_root


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
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None

    def start(self, timeout_s: float = 60.0) -> str:
        """Start it and wait until it accepts connections; its URL."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        ready = self.workdir / f"events-ready-{os.getpid()}-{time.monotonic_ns()}.json"
        root = str(project_root())
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        cmd = [self.python, "-m", "smartreco.events", "--port", str(self.port), "--log-dir", str(self.log_dir),
               "--ready-file", str(ready), "--log-level", "warning"]  # fmt: skip
        with open(self.workdir / "event-service.log", "ab") as err:
            self.proc = subprocess.Popen(
                cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=err, preexec_fn=die_with_parent
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EventServiceError(
                    f"event service exited with {self.proc.returncode}; see {self.workdir / 'event-service.log'}"
                )
            if ready.exists():
                with contextlib.suppress(ValueError, KeyError):
                    self.url = json.loads(ready.read_text())["url"]
                    ready.unlink(missing_ok=True)
                    return self.url
            time.sleep(0.05)
        self.stop()
        raise EventServiceError(f"event service not ready after {timeout_s:.0f} s")

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM (it finishes queued appends and closes the log), SIGKILL after ``grace_s``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
