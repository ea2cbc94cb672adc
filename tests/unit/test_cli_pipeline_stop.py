"""`smartreco pipeline run` stopped with SIGTERM (a timeout, a scheduler) unwinds like Ctrl-C: the runner's
clean-up (step containers removed, MLflow server stopped, both in ``finally`` blocks) runs, and the exit
code says SIGTERM (143), instead of the process dying with the containers and the server left running."""

from __future__ import annotations

import os
import signal

import pytest

from smartreco.cli import main

pytestmark = [pytest.mark.unit]


def test_sigterm_runs_the_runners_cleanup(monkeypatch):
    import pipelines.runner as runner

    cleaned = []

    def run_pipeline(*_args, **_kwargs):
        try:
            os.kill(os.getpid(), signal.SIGTERM)  # delivered to the main thread before the next bytecode
            raise AssertionError("SIGTERM did not stop the run")
        finally:
            cleaned.append("containers removed, MLflow server stopped")

    monkeypatch.setattr(runner, "run_pipeline", run_pipeline)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as stopped:
            main(["pipeline", "run", "training", "--local", "--runner", "subprocess"])
        assert stopped.value.code == 143
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert cleaned == ["containers removed, MLflow server stopped"]
