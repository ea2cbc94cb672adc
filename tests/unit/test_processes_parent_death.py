"""A child started with :func:`smartreco.processes.dying_with_parent` gets SIGTERM when its parent dies (the
executor's node processes and event service must not outlive an executor killed with SIGKILL), and, where
``setpriv`` exists, ``Popen`` needs no ``preexec_fn`` (so no fork() in a process with gRPC threads)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smartreco.processes import dying_with_parent

pytestmark = [pytest.mark.unit]

_PARENT = """
import subprocess, sys, time
from smartreco.processes import dying_with_parent
cmd, pre = dying_with_parent(["sleep", "60"])
child = subprocess.Popen(cmd, preexec_fn=pre)
# setpriv sets the signal, then execs: once the child is `sleep` the signal is set (Popen returned when setpriv began)
deadline = time.monotonic() + 20
while open(f"/proc/{child.pid}/comm").read().strip() != "sleep" and time.monotonic() < deadline:
    time.sleep(0.01)
print(child.pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split(") ", 1)[1][0] not in "ZX"  # a zombie has died
    except (FileNotFoundError, IndexError):
        return False


def test_child_gets_sigterm_when_its_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert _alive(child)
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child)
    finally:
        parent.kill()
        parent.stdout.close()


def test_setpriv_sets_the_signal_so_no_preexec_fn_is_needed(monkeypatch):
    cmd, pre = dying_with_parent(["x", "--y"])
    if shutil.which("setpriv"):
        assert cmd[-2:] == ["x", "--y"] and cmd[1:4] == ["--pdeathsig", "TERM", "--"] and pre is None
    monkeypatch.setattr(shutil, "which", lambda name: None)
    cmd, pre = dying_with_parent(["x", "--y"])
    assert cmd == ["x", "--y"] and callable(pre)
