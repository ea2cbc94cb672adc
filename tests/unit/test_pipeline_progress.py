"""`smartreco pipeline run --log`: one line per step with its time, kfp.local's logs in the file, and a
failing step shows the log's last lines and exits non-zero (a two-step kfp.local pipeline, subprocess)."""

import types

import pytest
from kfp import dsl

from smartreco.cli.pipeline import _run_logged
from smartreco.errors import SmartRecoError

pytestmark = [pytest.mark.unit]


@dsl.component(base_image="python:3.11")
def say_hello(name: str) -> str:
    print(f"hello-from-the-step {name}")
    return name


@dsl.component(base_image="python:3.11")
def maybe_fail(value: str, fail: bool) -> str:
    print("step-output-before-failing")
    if fail:
        raise RuntimeError("boom: the step failed on purpose")
    return value


@dsl.pipeline(name="progress-probe")
def probe(fail: bool = False) -> None:
    first = say_hello(name="x")
    maybe_fail(value=first.output, fail=fail)


def test_success_prints_one_line_per_step_and_logs_the_rest(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SMARTRECO_RUNS", str(tmp_path / "runs"))
    log = tmp_path / "demo" / "pipeline.log"
    run = _run_logged(probe, {"fail": False}, "subprocess", str(tmp_path / "root"), log)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"progress-probe: 2 steps; kfp.local logs -> {log}"
    steps = [line.split() for line in err[1:3]]
    assert [s[0] for s in steps] == ["say-hello", "maybe-fail"] and all(s[-1] == "ok" for s in steps)
    assert all(float(s[1]) > 0 for s in steps)  # "<task>  <seconds> s  ok"
    assert err[3].startswith("progress-probe: 2 steps done in ") and len(err) == 4
    text = log.read_text()
    assert "hello-from-the-step x" in text and "Executing task" in text  # the noise went to the file
    assert run.run_dir is not None


def test_failing_step_shows_the_log_tail_and_raises(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SMARTRECO_RUNS", str(tmp_path / "runs"))
    log = tmp_path / "demo" / "pipeline.log"
    with pytest.raises(SmartRecoError, match="maybe-fail"):
        _run_logged(probe, {"fail": True}, "subprocess", str(tmp_path / "root"), log)
    err = capsys.readouterr().err
    assert "maybe-fail" in err and "FAILURE" in err
    tail = err.split(f"--- last 25 lines of {log} ---", 1)[1]
    assert "boom: the step failed on purpose" in tail


def test_cli_training_run_with_a_bad_source_fails_with_the_log_tail(tmp_path, monkeypatch, capsys):
    """The real command the demo runs: the first step fails, the CLI shows its log lines and exits 1.

    ingest is retried (pipelines/tasks.py: 2 retries, 5 s then 10 s): kfp.local's backoff sleep is recorded
    instead of slept (15 s of a test's wall time), and the recorded waits are the policy's."""
    from kfp.local.orchestrator import task_executor

    from smartreco.cli import main

    waits: list[float] = []
    monkeypatch.setattr(task_executor, "time", types.SimpleNamespace(sleep=waits.append))
    monkeypatch.setenv("SMARTRECO_RUNS", str(tmp_path / "runs"))
    log = tmp_path / "demo" / "pipeline.log"
    code = main(
        [
            "pipeline",
            "run",
            "training",
            "--local",
            "--runner",
            "subprocess",
            "--json",
            "--log",
            str(log),
            "--param",
            f"source={tmp_path / 'no-such-data'}",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 1 and out == ""  # nothing on stdout: the demo's run record is not written
    assert "smartreco-training: 11 steps" in err and "ingest" in err and "FAILURE" in err
    assert f"--- last 25 lines of {log} ---" in err and "no-such-data" in err.split("--- last 25 lines", 1)[1]
    assert waits == [5.0, 10.0] and log.read_text().count("Executing task") == 3  # 3 attempts, 5 s + 10 s
