"""Pipeline steps run once inside a running rehearsal, as a Kubeflow step pod runs them against the cluster's
Services: a container of the pipeline image on the rehearsal's network (Service names resolve), as the pods' user
(10001) with no capabilities, the object-store volume mounted where the pods have it, removed when it ends.

Why not the pipeline itself: Kubeflow Pipelines is not in the overlays (a person's install), so its step pods
are not rehearsed; what they do to the platform is. The training pipeline registers the models in MLflow and
applies + materializes the Feast repo; a rehearsal needs both before its graph can fetch models and read the
online store (the Feast registry is empty otherwise). Inputs a step reads from the pipeline's artifact bucket
(S3 on a cluster) are staged by :func:`stage` into the object-store volume that stands in for S3
(:mod:`smartreco.rehearse.patches`). Every container carries the rehearsal's label, so ``down`` removes it too."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from smartreco import images
from smartreco.containers.engine import docker
from smartreco.rehearse import docker_args as da
from smartreco.rehearse import patches
from smartreco.rehearse.runner import RehearsalError

#: the pods' runAsUser / runAsGroup / fsGroup in the overlays (pipeline step pods run as the same user)
STEP_UID = 10001
#: the folder of the object-store volume standing in for the pipelines' artifact bucket
ARTIFACTS = "smartreco-pipeline"


def object_store_volume(rehearsal: str) -> str:
    """The engine's volume for the rehearsal's object-store claim (translate's ``<rehearsal>-pvc-<claim>``)."""
    return f"{rehearsal}-pvc-{patches.OBJECT_STORE_CLAIM}"


def step_container(rehearsal: str, step: str) -> str:
    return f"{rehearsal}-step-{step}"


def step_args(
    rehearsal: str, step: str, argv: Sequence[str], env_names: Sequence[str], image: str | None = None
) -> list[str]:
    """``docker run`` arguments of one step (pure). Environment values are not in them: ``--env NAME`` takes each
    from the ``docker`` process's environment, as the pods' values are passed."""
    args = [
        "run",
        "--name",
        step_container(rehearsal, step),
        "--network",
        rehearsal,
        *["--label", f"{da.LABEL}={rehearsal}", "--label", f"{da.LABEL_CONTAINER}=step-{step}"],
        *["--user", f"{STEP_UID}:{STEP_UID}", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"],
        "--mount",
        f"type=volume,source={object_store_volume(rehearsal)},target={patches.OBJECT_STORE_MOUNT}",
        "--env",
        "HOME",
    ]
    for name in sorted(env_names):
        args += ["--env", name]
    return [*args, "--entrypoint", argv[0], image or images.pipeline_image(), *argv[1:]]


def stage(rehearsal: str, source: Path, name: str) -> str:
    """Copy the host folder ``source`` into the object-store volume (``<ARTIFACTS>/<name>``), owned by the pods'
    user; returns the path the pods see it at. Writes into the engine's volume: root on the engine's host, as
    ``rehearse up`` itself needs."""
    where = docker(["volume", "inspect", "-f", "{{.Mountpoint}}", object_store_volume(rehearsal)]).stdout.strip()
    target = Path(where) / ARTIFACTS / name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, symlinks=False)
    for path in [target.parent, target, *target.rglob("*")]:
        os.chown(path, STEP_UID, STEP_UID)
        os.chmod(path, 0o2775 if path.is_dir() else 0o664)
    return f"{patches.OBJECT_STORE_MOUNT}/{ARTIFACTS}/{name}"


def run_step(
    rehearsal: str,
    step: str,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    image: str | None = None,
    timeout_s: float = 900.0,
) -> str:
    """Run one step to its end in rehearsal ``rehearsal``; its output (stdout and stderr). A non-zero exit raises
    :class:`RehearsalError` with the last lines. The container is removed either way."""
    import subprocess

    env = {"HOME": "/tmp", **(env or {})}
    name = step_container(rehearsal, step)
    docker(["rm", "-f", name], check=False)
    try:
        proc = subprocess.run(
            ["docker", *step_args(rehearsal, step, argv, [k for k in env if k != "HOME"], image)],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            timeout=timeout_s,
        )
    finally:
        docker(["rm", "-f", name], check=False)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-25:])
        raise RehearsalError(f"rehearsal {rehearsal}: step {step} exited {proc.returncode}:\n{tail}")
    return output
