"""Run a long command, keep its whole output in a log file, and echo only the lines that show progress."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from smartreco.containers.engine import EngineError


def run_logged(cmd: Sequence[str], log_path: Path, *, show: Callable[[str], str | None],
               echo: Callable[[str], None], what: str, env: dict[str, str] | None = None,
               cwd: Path | None = None) -> None:
    """`show(line)` returns the text to echo for a progress line, or None; failure raises with the tail."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log, subprocess.Popen(
        list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd,
        bufsize=1, errors="replace",
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            shown = show(line.rstrip("\n"))
            if shown:
                echo(shown)
        code = proc.wait()
    if code != 0:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
        for line in tail:
            echo(f"    | {line}")
        raise EngineError(f"{what} failed (exit {code}); full log: {log_path}")
