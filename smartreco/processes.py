"""A Python service started as a child process that says it is ready by writing a JSON file.

The event service (``python -m smartreco.events --ready-file F``) and the local executor
(``python -m inference_graph.executor --ready-file F``) write their endpoints to ``F`` once they accept
connections. Whoever starts one (the executor starting its event service, the crash checks, the
benchmarks) needs the same four things: the project on ``PYTHONPATH``, stderr in a file, a bounded wait
for the ready file that fails fast when the child dies first, and a stop that escalates to SIGKILL.
This class is that, once; callers only say which module, which arguments and what to read from the file.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from smartreco.errors import SmartRecoError
from smartreco.paths import project_root


def set_parent_death_signal() -> None:
    """Linux: this process gets SIGTERM when its parent dies without stopping it (e.g. SIGKILL)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def dying_with_parent(cmd: Sequence[str]) -> tuple[list[str], Callable[[], None] | None]:
    """``(command, preexec_fn)`` for a child that gets SIGTERM when this process dies (PR_SET_PDEATHSIG).

    ``setpriv --pdeathsig`` (util-linux) sets the signal in the child itself, so ``Popen`` needs no
    ``preexec_fn`` and can start the child with vfork. With a ``preexec_fn`` Python must fork(), which runs
    gRPC's fork handlers in a process that has gRPC threads (the executor, a test process): under load the
    child aborted before exec (SIGABRT, gRPC's "epoll_wait error: Bad file descriptor"; seen in a serving-env
    test run, session 9). The signal is set once setpriv runs, a few milliseconds after ``Popen`` returns (a
    ``preexec_fn`` had set it before): a parent killed within that window leaves the child running. Without setpriv
    (not Linux), the ``preexec_fn`` as before."""
    setpriv = shutil.which("setpriv")
    if setpriv:
        return [setpriv, "--pdeathsig", "TERM", "--", *cmd], None
    return list(cmd), set_parent_death_signal


class ReadyProcessError(SmartRecoError):
    """The child exited before it wrote its ready file, or never wrote it in time."""


class ReadyFileProcess:
    """``python -m MODULE ARGS... --ready-file F`` in the project root; :meth:`wait_ready` returns ``F``'s JSON.

    ``env`` is added to this process's environment (a value of ``None`` removes the variable);
    ``die_with_parent``: the child gets SIGTERM when this process dies (:func:`dying_with_parent`)."""

    def __init__(
        self,
        module: str,
        args: Sequence[str],
        workdir: Path,
        *,
        name: str,
        python: str | None = None,
        env: Mapping[str, str | None] | None = None,
        die_with_parent: bool = False,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.ready_file = workdir / f"{name}-ready-{os.getpid()}-{time.monotonic_ns()}.json"
        self.stderr_path = workdir / f"{name}.stderr"
        root = str(project_root())
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for key, value in (env or {}).items():
            if value is None:
                full_env.pop(key, None)
            else:
                full_env[key] = value
        full_env["PYTHONPATH"] = os.pathsep.join(p for p in (root, full_env.get("PYTHONPATH", "")) if p)
        cmd = [python or sys.executable, "-m", module, *args, "--ready-file", str(self.ready_file)]
        preexec_fn = None
        if die_with_parent:
            cmd, preexec_fn = dying_with_parent(cmd)
        self._stderr = open(self.stderr_path, "ab")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            cmd, cwd=root, env=full_env, stdout=subprocess.DEVNULL, stderr=self._stderr, preexec_fn=preexec_fn
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout_s: float) -> dict[str, Any]:
        """The ready file's JSON once it parses (a writer may not replace it atomically); fails as soon as
        the child exits, and kills it after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ReadyProcessError(
                    f"{self.name} exited with {self.proc.returncode} before it was ready; see {self.stderr_path}"
                )
            try:
                return json.loads(self.ready_file.read_text())
            except (OSError, ValueError):
                time.sleep(0.05)
        self.kill()
        raise ReadyProcessError(f"{self.name} not ready after {timeout_s:.0f} s; see {self.stderr_path}")

    def kill(self, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` (if it still runs) and reap it."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        return self.wait()

    def stop(self, grace_s: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after ``grace_s``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.wait()

    def wait(self, timeout_s: float = 60.0) -> int:
        rc = self.proc.wait(timeout=timeout_s)
        if not self._stderr.closed:
            self._stderr.close()
        self.ready_file.unlink(missing_ok=True)
        return rc


def rest_host_port(ready: Mapping[str, Any]) -> tuple[str, int]:
    """The executor's ready file: ``{"rest": "http://host:port", ...}`` -> ``(host, port)``."""
    host, port = str(ready["rest"]).removeprefix("http://").rsplit(":", 1)
    return host, int(port)
