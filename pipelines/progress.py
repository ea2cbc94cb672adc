"""Progress of a local pipeline run as a product shows it: one line per step with its time, a progress bar
while steps run (on a terminal), and kfp.local's own logs (executor JSON, every step's output) in a file
whose last lines are shown when a step fails (``smartreco pipeline run --log FILE``; ``make demo``)."""

from __future__ import annotations

import contextlib
import io
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path


def count_steps(pipeline_func: Callable) -> int:
    """Container steps of a compiled pipeline, nested DAGs (conditions, loops) included: the progress total
    (a step under a condition that is not taken never runs, so a run can end below it)."""
    spec = getattr(pipeline_func, "pipeline_spec", None)
    if spec is None:
        return 0

    def count(dag) -> int:
        n = 0
        for task in dag.tasks.values():
            comp = spec.components[task.component_ref.name]
            n += count(comp.dag) if comp.HasField("dag") else 1
        return n

    return count(spec.root.dag)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STARTED = re.compile(r"Executing task '([^']+)'")
_FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")


class StepLog(io.TextIOBase):
    """Where a run's stdout/stderr go in ``--log`` mode: everything (kfp.local's executor JSON, the steps'
    own output) into the log file; one line per finished step with its time to ``echo``; a progress bar
    (tqdm, on a terminal only) while steps run. kfp.local logs "Executing task 'x'" / "Task 'x' finished
    with status S" through a handler on ``sys.stdout``, which is how the steps are seen."""

    def __init__(self, path: Path, total: int, echo: Callable[[str], None], tty: bool | None = None) -> None:
        from tqdm import tqdm

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = self.path.open("a", encoding="utf-8")
        self.echo = echo
        self.started: dict[str, float] = {}
        self.finished: list[tuple[str, str, float]] = []
        self._buf = ""
        tty = sys.__stderr__.isatty() if tty is None else tty
        self.bar = tqdm(total=total or None, file=sys.__stderr__, disable=not tty, leave=False, unit="step",
                        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} steps [{elapsed}]")

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.file.write(text)
        self._buf += text
        *lines, self._buf = self._buf.split("\n")
        for line in lines:
            self._line(_ANSI.sub("", line))
        return len(text)

    def flush(self) -> None:
        if not self.file.closed:
            self.file.flush()

    def _line(self, line: str) -> None:
        if m := _STARTED.search(line):
            self.started[m.group(1)] = time.perf_counter()
            self.bar.set_description_str(m.group(1))
        elif m := _FINISHED.search(line):
            task, status = m.groups()
            seconds = time.perf_counter() - self.started.get(task, time.perf_counter())
            attempt = 1 + sum(1 for done in self.finished if done[0] == task)  # a step with retries reruns
            self.finished.append((task, status, seconds))
            if attempt == 1:
                self.bar.update(1)
            mark = ("ok" if status == "SUCCESS" else status) + (f" (attempt {attempt})" if attempt > 1 else "")
            self.bar.clear()
            self.echo(f"  {task:<24s} {seconds:7.1f} s  {mark}")
            self.bar.refresh()

    def tail(self, n: int = 20) -> list[str]:
        """The log's last ``n`` lines (what a failed run shows)."""
        self.flush()
        lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        return [_ANSI.sub("", line) for line in lines[-n:]]

    def close(self) -> None:
        self.bar.close()
        self.file.close()
        super().close()


@contextlib.contextmanager
def step_log(path: Path | str, total: int, echo: Callable[[str], None]) -> Iterator[StepLog]:
    """Send this process's stdout and stderr (kfp.local's logs and every step's output) to ``path`` while
    ``echo`` shows one line per step (it must write to the stream it held before: ``sys.stderr`` is the log
    inside); see :class:`StepLog`."""
    log = StepLog(Path(path), total, echo)
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            yield log
    finally:
        log.close()
