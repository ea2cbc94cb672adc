"""Run a pipeline locally with ``kfp.local``: every step in the pipeline image (docker) or as a subprocess.

* ``docker``: ``DockerRunner(network_mode="host", ...)``: each step in ``smartreco-pipeline:<version>``,
  exactly the container a cluster runs, named ``smartreco-step-<run>-<task>`` (the log names it) and
  labelled with the run, so an interrupted run's containers are removed too. Steps reach MLflow as on a
  cluster: through a tracking server (``mlflow server`` on the host network, started by the runner
  unless ``MLFLOW_TRACKING_URI`` names one) whose artifact store, like the Feast stores and deploy
  records under the runs folder, is mounted at the same absolute path (a cluster's object store / PVC).
  kfp mounts only the pipeline root; the runner adds the runs folder, absolute paths passed as pipeline
  arguments (e.g. the embedding cache) and the project's bundled data / manifests / feature repo
  read-only under the image's ``/app``. Steps run at the runner's own niceness (``nice -n``). It never
  pulls (an exact local tag must exist: ``smartreco images build``).
* ``subprocess``: ``SubprocessRunner(use_venv=False)``: steps run with this venv's Python (the project
  is installed editable), 20x faster to start than ``use_venv=True`` (STACK_NOTES "kfp local").
* ``auto``: docker when an engine answers and the image exists, else subprocess (it says which).

Embedded defaults: MLflow on SQLite under ``<runs>/mlflow``, Feast SQLite online store under
``<runs>/feast``, pipeline roots under ``<runs>/pipelines``. kfp.local does no caching and ignores
resource limits; the cluster honours both (set in the pipeline definitions).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from smartreco import settings
from smartreco.errors import SmartRecoError
from smartreco.images import pipeline_image
from smartreco.paths import project_root, runs_dir

RUNNERS = ("auto", "docker", "subprocess")
#: read-only project folders a containerised step may need (bundled data, manifest template, Feast repo)
PROJECT_MOUNTS = ("data", "manifests", "feature_repo")
IMAGE_HOME = "/app"
#: environment every step gets (both runners): offline model hubs, where runs and MLflow live
STEP_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


class PipelineRunError(SmartRecoError):
    """A local run that cannot start or whose step failed (the message names the step)."""


@dataclass
class LocalRun:
    pipeline: str
    runner: str
    runner_reason: str
    pipeline_root: Path
    run_dir: Path | None
    seconds: float
    outputs: dict = field(default_factory=dict)
    #: docker runner: per task, the step's container name and its ``docker run`` to exit seconds
    steps: dict[str, dict] = field(default_factory=dict)

    def artifacts(self) -> list[Path]:
        """Every output file/folder of the run, task by task (``<run_dir>/<task>/<output>``)."""
        if self.run_dir is None or not self.run_dir.is_dir():
            return []
        return sorted(p for task in self.run_dir.iterdir() if task.is_dir() for p in task.iterdir())

    def artifact(self, task: str, output: str) -> Path | None:
        if self.run_dir is None:
            return None
        path = self.run_dir / task / output
        return path if path.exists() else None


def docker_problem(image: str | None = None) -> str | None:
    """None when DockerRunner can run ``image`` (default: the pipeline image) here, else why not."""
    image = image or pipeline_image()
    from smartreco.containers.engine import engine_problem, image_inspect

    problem = engine_problem(timeout=5.0)
    if problem:
        return problem
    if image_inspect(image) is None:
        return f"image {image} not built (`smartreco images build`)"
    try:
        import docker  # noqa: F401  (docker-py, what kfp.local.DockerRunner drives)
    except ImportError:
        return "python package `docker` missing in this venv"
    return None


def choose_runner(runner: str = "auto") -> tuple[str, str]:
    """(runner, reason). ``docker`` asked for but impossible is an error, not a silent fallback."""
    if runner not in RUNNERS:
        raise PipelineRunError(f"--runner: must be one of {', '.join(RUNNERS)}, got {runner!r}")
    if runner == "subprocess":
        return "subprocess", "asked for"
    problem = docker_problem()
    if runner == "docker":
        if problem:
            raise PipelineRunError(f"--runner docker: {problem}")
        return "docker", f"image {pipeline_image()}"
    if problem:
        return "subprocess", f"no container runner ({problem})"
    return "docker", f"engine answers and {pipeline_image()} exists"


STEP_LABEL_KIND = "org.smartreco.launcher"
STEP_LABEL_RUN = "org.smartreco.run"
STEP_KIND = "pipeline-step"


def _arg_mounts(arguments: dict | None, runs: Path) -> list[Path]:
    """Absolute folders passed as pipeline arguments (outside the runs folder): mounted read-write."""
    out = []
    for value in (arguments or {}).values():
        if isinstance(value, str) and value.startswith("/"):
            path = Path(value)
            if path.is_dir() and runs not in (path, *path.parents) and path not in out:
                out.append(path)
    return out


def _docker_runner(runs: Path, env_extra: dict[str, str], extra_mounts: list[Path], labels: dict[str, str]):
    from docker.types import Mount
    from kfp import local

    mounts = [Mount(target=str(runs), source=str(runs), type="bind")]
    mounts += [Mount(target=str(p), source=str(p), type="bind") for p in extra_mounts]
    for name in PROJECT_MOUNTS:
        src = project_root() / name
        if src.is_dir():
            mounts.append(Mount(target=f"{IMAGE_HOME}/{name}", source=str(src), type="bind", read_only=True))
    env = {**STEP_ENV, "SMARTRECO_RUNS": str(runs), "SMARTRECO_HOME": IMAGE_HOME, **env_extra}
    args: dict = {"network_mode": "host", "environment": env, "mounts": mounts, "labels": labels}
    niceness = os.nice(0)
    if niceness > 0:  # containers do not inherit the runner's niceness: a step runs as a subprocess would
        args["entrypoint"] = ["nice", "-n", str(niceness)]
    return local.DockerRunner(**args)


def _task_of(command: list[str]) -> str:
    """The task a kfp step command runs (its executor input names ``<root>/<run>/<task>/executor_output.json``)."""
    import json

    for i, part in enumerate(command[:-1]):
        if part == "--executor_input":
            with contextlib.suppress(ValueError, KeyError, TypeError):
                return Path(json.loads(command[i + 1])["outputs"]["outputFile"]).parent.name
    return "step"


@contextlib.contextmanager
def named_step_containers(run_id: str, echo: Callable[[str], None], steps: dict[str, dict]) -> Iterator[None]:
    """Run each DockerRunner step as ``smartreco-step-<run>-<task>-<4 hex>`` (the log says which), time it, and
    remove whatever is left of the run's containers at the end (an interrupted run leaves none behind).

    Replaces kfp's ``run_docker_container`` for the run: kfp starts containers with ``auto_remove=True``
    and takes a container already gone when it asks for the exit code as success, so a step that fails
    within a second would pass; here the container is removed only after its exit code is read. It also
    never pulls: the exact local tag must exist."""
    from kfp.local import docker_task_handler as handler

    original = handler.run_docker_container

    def run(client, image, command, volumes, **kwargs):
        import docker

        task = _task_of(list(command))
        image = handler.add_latest_tag_if_not_present(image)
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            raise PipelineRunError(f"step {task}: image {image} not found locally (`smartreco images build`)") from None
        name = f"smartreco-step-{run_id}-{task}-{uuid.uuid4().hex[:4]}"
        echo(f"[pipeline] step {task}: container {name} ({image})")
        t0 = time.perf_counter()
        container = client.containers.run(image=image, command=command, detach=True, stdout=True, stderr=True,
                                          volumes=volumes, name=name, **kwargs)
        try:
            for line in container.logs(stream=True):
                print(line.decode(errors="replace"), end="")
            code = int(container.wait()["StatusCode"])
        finally:
            with contextlib.suppress(Exception):
                container.remove(force=True)
        steps[task] = {"container": name, "seconds": round(time.perf_counter() - t0, 2), "exit_code": code}
        return code

    handler.run_docker_container = run
    try:
        yield
    finally:
        handler.run_docker_container = original
        from smartreco.containers.engine import docker as docker_cli

        left = docker_cli(["ps", "-aq", "--filter", f"label={STEP_LABEL_RUN}={run_id}"], check=False).stdout.split()
        if left:
            docker_cli(["rm", "-f", *left], check=False)


@contextlib.contextmanager
def tracking_server(runs: Path, echo: Callable[[str], None], timeout_s: float = 120.0) -> Iterator[str]:
    """``mlflow server`` over the runs folder's store on a free loopback port (what steps reach as on a
    cluster); yields its URI and stops it at the end. Artifacts go straight to the (mounted) store."""
    from smartreco.ports import free_port

    folder = runs / "mlflow"
    (folder / "artifacts").mkdir(parents=True, exist_ok=True)
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
           "--default-artifact-root", (folder / "artifacts").as_uri(), "--no-serve-artifacts",
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    log_path = folder / "server.log"
    t0 = time.perf_counter()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while True:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-800:]
                raise PipelineRunError(f"mlflow server exited with {proc.returncode}: {tail}")
            with contextlib.suppress(OSError), urllib.request.urlopen(uri + "/health", timeout=1) as r:
                if r.status == 200:
                    break
            if time.perf_counter() - t0 > timeout_s:
                raise PipelineRunError(f"mlflow server not answering on {uri} after {timeout_s:.0f} s ({log_path})")
            time.sleep(0.25)
        echo(f"[pipeline] MLflow tracking server {uri} (store {folder}) up in {time.perf_counter() - t0:.1f} s")
        yield uri
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def init_local(
    runner: str = "auto",
    pipeline_root: Path | str | None = None,
    *,
    docker_env: dict[str, str] | None = None,
    extra_mounts: list[Path] | None = None,
    labels: dict[str, str] | None = None,
) -> tuple[str, str, Path]:
    """``kfp.local.init`` for ``runner``; returns (runner, reason, pipeline_root)."""
    from kfp import local

    chosen, reason = choose_runner(runner)
    runs = runs_dir().resolve()
    root = Path(pipeline_root).resolve() if pipeline_root else runs / "pipelines"
    root.mkdir(parents=True, exist_ok=True)
    os.environ.update({**STEP_ENV, "SMARTRECO_RUNS": str(runs)})  # subprocess steps inherit it
    if chosen == "docker":
        env = dict(docker_env or {})
        if settings.MLFLOW_TRACKING_URI.is_set() and "MLFLOW_TRACKING_URI" not in env:
            env["MLFLOW_TRACKING_URI"] = settings.MLFLOW_TRACKING_URI.get()
        local.init(runner=_docker_runner(runs, env, extra_mounts or [], labels or {}), pipeline_root=str(root),
                   raise_on_error=True)
    else:
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    return chosen, reason, root


def _newest_run(root: Path, name: str, since: float) -> Path | None:
    runs = [p for p in root.glob(f"{name}-*") if p.is_dir() and p.stat().st_mtime >= since - 1]
    return max(runs, key=lambda p: p.stat().st_mtime) if runs else None


def run_pipeline(
    pipeline_func: Callable,
    arguments: dict | None = None,
    *,
    runner: str = "auto",
    pipeline_root: Path | str | None = None,
    echo: Callable[[str], None] = print,
) -> LocalRun:
    """Run a ``@dsl.pipeline`` locally end to end; raises PipelineRunError naming the failing step."""
    name = getattr(pipeline_func, "name", None) or pipeline_func.__name__
    name = name.replace("_", "-")
    chosen, reason = choose_runner(runner)
    steps: dict[str, dict] = {}
    with contextlib.ExitStack() as stack:
        if chosen == "docker":
            runs = runs_dir().resolve()
            run_id = f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
            env = {}
            if not settings.MLFLOW_TRACKING_URI.is_set():
                env["MLFLOW_TRACKING_URI"] = stack.enter_context(tracking_server(runs, echo))
            labels = {STEP_LABEL_KIND: STEP_KIND, STEP_LABEL_RUN: run_id}
            _, _, root = init_local("docker", pipeline_root, docker_env=env,
                                    extra_mounts=_arg_mounts(arguments, runs), labels=labels)
            stack.enter_context(named_step_containers(run_id, echo, steps))
        else:
            _, _, root = init_local("subprocess", pipeline_root)
        echo(f"[pipeline] {name}: runner={chosen} ({reason}); pipeline root {root}")
        t0 = time.time()
        try:
            task = pipeline_func(**(arguments or {}))
        except Exception as exc:  # kfp: RuntimeError("Pipeline ... failed ... Task 'x' finished with status FAILURE")
            last = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
            raise PipelineRunError(f"{name} failed: {last}") from None
        seconds = time.time() - t0
    outputs = {}
    for key, value in (getattr(task, "outputs", None) or {}).items():
        outputs[key] = getattr(value, "path", value)
    run = LocalRun(name, chosen, reason, root, _newest_run(root, name, t0), seconds, outputs, steps)
    echo(f"[pipeline] {name}: done in {seconds:.1f} s; artifacts under {run.run_dir}")
    return run
