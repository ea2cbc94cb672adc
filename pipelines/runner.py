"""Run a pipeline locally with ``kfp.local``: every step in the pipeline image (docker) or as a subprocess.

* ``docker``: ``DockerRunner(network_mode="host", ...)``: each step in ``smartreco-pipeline:<version>``,
  exactly the container a cluster runs. kfp mounts only the pipeline root, so the runner also mounts
  the runs folder (MLflow SQLite, Feast stores, deploy records) at the same absolute path and the
  project's bundled data / manifests / feature repo read-only under the image's ``/app``; it never
  pulls (an exact local tag must exist: ``smartreco images build``).
* ``subprocess``: ``SubprocessRunner(use_venv=False)``: steps run with this venv's Python (the project
  is installed editable), 20x faster to start than ``use_venv=True`` (STACK_NOTES "kfp local").
* ``auto``: docker when an engine answers and the image exists, else subprocess (it says which).

Embedded defaults: MLflow on SQLite under ``<runs>/mlflow``, Feast SQLite online store under
``<runs>/feast``, pipeline roots under ``<runs>/pipelines``. kfp.local does no caching and ignores
resource limits; the cluster honours both (set in the pipeline definitions).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from smartreco.errors import SmartRecoError
from smartreco.images import PIPELINE_IMAGE
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


def docker_problem(image: str = PIPELINE_IMAGE) -> str | None:
    """None when DockerRunner can run ``image`` here, else why not."""
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
        return "docker", f"image {PIPELINE_IMAGE}"
    if problem:
        return "subprocess", f"no container runner ({problem})"
    return "docker", f"engine answers and {PIPELINE_IMAGE} exists"


def _docker_runner(runs: Path):
    from docker.types import Mount
    from kfp import local

    mounts = [Mount(target=str(runs), source=str(runs), type="bind")]
    for name in PROJECT_MOUNTS:
        src = project_root() / name
        if src.is_dir():
            mounts.append(Mount(target=f"{IMAGE_HOME}/{name}", source=str(src), type="bind", read_only=True))
    env = {**STEP_ENV, "SMARTRECO_RUNS": str(runs), "SMARTRECO_HOME": IMAGE_HOME}
    if os.environ.get("MLFLOW_TRACKING_URI"):
        env["MLFLOW_TRACKING_URI"] = os.environ["MLFLOW_TRACKING_URI"]
    return local.DockerRunner(network_mode="host", environment=env, mounts=mounts)


def init_local(runner: str = "auto", pipeline_root: Path | str | None = None) -> tuple[str, str, Path]:
    """``kfp.local.init`` for ``runner``; returns (runner, reason, pipeline_root)."""
    from kfp import local

    chosen, reason = choose_runner(runner)
    runs = runs_dir().resolve()
    root = Path(pipeline_root).resolve() if pipeline_root else runs / "pipelines"
    root.mkdir(parents=True, exist_ok=True)
    os.environ.update({**STEP_ENV, "SMARTRECO_RUNS": str(runs)})  # subprocess steps inherit it
    if chosen == "docker":
        local.init(runner=_docker_runner(runs), pipeline_root=str(root), raise_on_error=True)
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
    chosen, reason, root = init_local(runner, pipeline_root)
    name = getattr(pipeline_func, "name", None) or pipeline_func.__name__
    name = name.replace("_", "-")
    echo(f"[pipeline] {name}: runner={chosen} ({reason}); pipeline root {root}")
    t0 = time.time()
    try:
        task = pipeline_func(**(arguments or {}))
    except Exception as exc:  # kfp raises RuntimeError("Pipeline ... failed ... Task 'x' finished with status FAILURE")
        last = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
        raise PipelineRunError(f"{name} failed: {last}") from None
    seconds = time.time() - t0
    outputs = {}
    for key, value in (getattr(task, "outputs", None) or {}).items():
        outputs[key] = getattr(value, "path", value)
    run = LocalRun(name, chosen, reason, root, _newest_run(root, name, t0), seconds, outputs)
    echo(f"[pipeline] {name}: done in {seconds:.1f} s; artifacts under {run.run_dir}")
    return run
