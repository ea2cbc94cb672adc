"""`smartreco pipeline run|compile|submit`: the Kubeflow pipelines, locally (kfp.local) or on a cluster."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from pathlib import Path

import click

from smartreco.errors import SmartRecoError

NAMES = ("training", "drift", "batch")


def parse_params(pairs: tuple[str, ...], pipeline_func) -> dict:
    """``key=value`` pairs checked against the pipeline's inputs; non-string inputs are parsed as JSON."""
    known = set((pipeline_func.component_spec.inputs or {}).keys())
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise SmartRecoError(f"--param: expected KEY=VALUE, got {pair!r}")
        if key not in known:
            raise SmartRecoError(f"--param {key}: not a parameter of {pipeline_func.name} "
                                 f"(one of {', '.join(sorted(known))})")
        kind = str(pipeline_func.component_spec.inputs[key].type)
        if kind == "String":
            out[key] = raw  # "318" stays an id, not a number
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key] = value
    return out


def local_defaults(name: str) -> dict:
    """Embedded defaults for local runs (SQLite MLflow/Feast live under the runs folder anyway)."""
    from smartreco.paths import runs_dir

    if name == "training":
        return {"embedding_cache_dir": str((runs_dir() / "embeddings").resolve())}
    if name == "drift":
        return {"retrain_mode": "local"}
    return {}


def artifact_index(run) -> list[tuple[str, str]]:
    """(task/output, path) for every output of a local run (what the CLI and the demo print)."""
    rows = []
    for path in run.artifacts():
        if path.name == "executor_output.json":
            continue
        rows.append((f"{path.parent.name}/{path.name}", str(path)))
    return rows


@click.group()
def pipeline() -> None:
    """Run (locally), compile and submit the training, drift and batch pipelines."""


@pipeline.command("run")
@click.argument("name", type=click.Choice(NAMES))
@click.option("--local", "local", is_flag=True, required=True, help="run with kfp.local on this machine")
@click.option("--runner", default="auto", show_default=True, type=click.Choice(["auto", "docker", "subprocess"]),
              help="docker: each step in the pipeline image; subprocess: this venv's Python; auto: docker if possible")
@click.option("--param", "params", multiple=True, help="pipeline parameter KEY=VALUE (repeatable)")
@click.option("--sample-users", type=int, default=None, help="shortcut for --param sample_users=N")
@click.option("--pipeline-root", default=None, help="where kfp.local writes artifacts (default <runs>/pipelines)")
@click.option("--json", "as_json", is_flag=True, help="print the artifact index as JSON")
@click.option("--log", "log_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="kfp.local's logs go to this file; stderr shows one line per step (a progress bar on a "
                   "terminal) and, when a step fails, the log's last lines")
def run_cmd(name: str, local: bool, runner: str, params: tuple[str, ...], sample_users: int | None,
            pipeline_root: str | None, as_json: bool, log_file: Path | None) -> None:
    """Run a pipeline end to end on this machine and print where every artifact is."""
    from pipelines.compile import get_pipeline
    from pipelines.runner import run_pipeline

    # a SIGTERM (a timeout, a scheduler, `kill`) unwinds like Ctrl-C: the runner's cleanup removes the run's
    # step containers and stops its MLflow server instead of leaving them running
    signal.signal(signal.SIGTERM, _exit_on_sigterm)

    func = get_pipeline(name)
    args = {**local_defaults(name), **parse_params(params, func)}
    if sample_users is not None:
        args.update(parse_params((f"sample_users={sample_users}",), func))
    args = {k: v for k, v in args.items() if k in (func.component_spec.inputs or {})}
    if log_file is not None:
        run = _run_logged(func, args, runner, pipeline_root, log_file)
    else:
        # kfp.local logs every step to stdout: send that to stderr so stdout carries only the result (--json)
        with contextlib.redirect_stdout(sys.stderr):
            run = run_pipeline(func, args, runner=runner, pipeline_root=pipeline_root,
                               echo=lambda m: click.echo(m, err=True))
    index = artifact_index(run)
    if as_json:
        click.echo(json.dumps({"pipeline": run.pipeline, "runner": run.runner, "runner_reason": run.runner_reason,
                               "seconds": round(run.seconds, 1), "run_dir": str(run.run_dir),
                               "outputs": {k: str(v) for k, v in run.outputs.items()},
                               "steps": run.steps, "artifacts": dict(index)}, indent=2))
        return
    click.echo(f"{run.pipeline}: finished in {run.seconds:.1f} s with the {run.runner} runner ({run.runner_reason})")
    click.echo(f"run folder: {run.run_dir}")
    for key, path in index:
        click.echo(f"  {key:45s} {path}")


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


#: log lines a failed ``--log`` run shows
FAILED_TAIL_LINES = 25


def _run_logged(func, args: dict, runner: str, pipeline_root: str | None, log_file: Path):
    """``run_pipeline`` with its output in ``log_file`` and one line per step on stderr; a failure shows the
    log's last lines, then raises (exit 1)."""
    from pipelines.progress import count_steps, step_log
    from pipelines.runner import PipelineRunError, run_pipeline

    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text("")

    stderr = sys.stderr  # inside step_log sys.stderr is the log file

    def say(message: str) -> None:
        click.echo(message, file=stderr)

    total = count_steps(func)
    say(f"{func.name}: {total} steps; kfp.local logs -> {log_file}")
    try:
        with step_log(log_file, total, say) as log:
            run = run_pipeline(func, args, runner=runner, pipeline_root=pipeline_root, echo=print)
    except PipelineRunError:
        say(f"--- last {FAILED_TAIL_LINES} lines of {log_file} ---")
        for line in log.tail(FAILED_TAIL_LINES):
            say(f"  {line}")
        say("---")
        raise
    steps = len({task for task, _, _ in log.finished})
    say(f"{func.name}: {steps} steps done in {run.seconds:.1f} s ({run.runner} runner)")
    return run


@pipeline.command("compile")
@click.option("--out", "out_dir", default="build/pipelines", show_default=True, help="folder for the YAML files")
@click.option("--name", "names", multiple=True, type=click.Choice(NAMES), help="only these (default: all)")
def compile_cmd(out_dir: str, names: tuple[str, ...]) -> None:
    """Compile pipelines to KFP YAML (upload them in the Kubeflow UI or with `submit`)."""
    from pipelines.compile import compile_all

    for name, path in compile_all(Path(out_dir), list(names) or None).items():
        click.echo(f"{name}: {path}")


@pipeline.command("submit")
@click.argument("name", type=click.Choice(NAMES))
@click.option("--host", required=True, help="Kubeflow Pipelines API, e.g. http://localhost:8080")
@click.option("--param", "params", multiple=True, help="pipeline parameter KEY=VALUE (repeatable)")
@click.option("--experiment", default="smartreco", show_default=True)
@click.option("--schedule", default="", help='cron (6 fields, with seconds) for a recurring run, e.g. "0 0 3 * * *"')
@click.option("--version", default="", help="pipeline version name (default: a timestamp)")
@click.option("--namespace", default=None, help="Kubeflow profile namespace (multi-user installs)")
def submit_cmd(name: str, host: str, params: tuple[str, ...], experiment: str, schedule: str, version: str,
               namespace: str | None) -> None:
    """Upload the pipeline + a new version, create a run (or a recurring run) and print its URL."""
    from pipelines.compile import get_pipeline
    from pipelines.submit import submit

    args = parse_params(params, get_pipeline(name))
    click.echo(f"submitting {name} to {host} ...", err=True)
    done = submit(name, host=host, arguments=args, experiment=experiment, schedule=schedule, version=version,
                  namespace=namespace)
    kind = "recurring run" if done.recurring else "run"
    click.echo(f"pipeline {done.pipeline_id} version {done.version_id}: {kind} {done.run_id}")
    click.echo(done.url)
