"""Talk to the Docker engine through the `docker` CLI (no docker-py needed in either venv)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence

from smartreco.errors import SmartRecoError


class EngineError(SmartRecoError):
    """No engine, or a docker command failed; the message is the one line a user sees."""


def engine_problem(timeout: float = 10.0) -> str | None:
    """None when a Docker engine answers, else why not (used by the CLI and the `container` skip)."""
    if shutil.which("docker") is None:
        return "no `docker` CLI on PATH"
    try:
        proc = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"`docker version` did not answer within {timeout:.0f} s"
    if proc.returncode != 0 or not proc.stdout.strip():
        last = (proc.stderr.strip().splitlines() or ["no server version"])[-1]
        return f"no Docker engine answers ({last})"
    return None


def require_engine() -> None:
    problem = engine_problem()
    if problem:
        raise EngineError(f"{problem}; start one with `bash scripts/services.sh start` (root) or dockerd")


def docker(args: Sequence[str], *, check: bool = True, timeout: float | None = None,
           input_bytes: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Run `docker ARGS`, capturing text output; raise EngineError with docker's last line on failure."""
    proc = subprocess.run(["docker", *args], capture_output=True, timeout=timeout, input=input_bytes)
    out = proc.stdout.decode(errors="replace")
    err = proc.stderr.decode(errors="replace")
    result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    if check and proc.returncode != 0:
        last = (err.strip().splitlines() or out.strip().splitlines() or ["no output"])[-1]
        raise EngineError(f"docker {args[0]} failed: {last}")
    return result


def image_inspect(ref: str) -> dict | None:
    """The engine's JSON for an image, or None when it has no such image."""
    proc = docker(["image", "inspect", ref], check=False)
    if proc.returncode != 0:
        return None
    data = json.loads(proc.stdout)
    return data[0] if data else None


def image_label(ref: str, key: str) -> str | None:
    info = image_inspect(ref)
    if info is None:
        return None
    return ((info.get("Config") or {}).get("Labels") or {}).get(key)


def engine_free_disk_gb() -> float | None:
    """Free space (GB) where the engine keeps its layers, or None when that folder is not on this machine (a
    remote engine) or cannot be read."""
    proc = docker(["info", "--format", "{{.DockerRootDir}}"], check=False)
    root = proc.stdout.strip()
    if proc.returncode != 0 or not root:
        return None
    try:
        return shutil.disk_usage(root).free / 1e9
    except OSError:
        return None


def require_build_disk(what: str, need_gb: float) -> None:
    """Refuse a build that would fill the disk half-way (docker's own error names a random file of a layer,
    leaves a half-written layer behind and says nothing of what to free)."""
    free = engine_free_disk_gb()
    if free is not None and free < need_gb:
        raise EngineError(
            f"{what} needs about {need_gb:.1f} GB free where the engine keeps its layers; {free:.1f} GB is free "
            "(`docker image prune` removes dangling images; `docker system df` shows what uses it)"
        )
