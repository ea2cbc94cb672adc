"""A wheelhouse built for the image's EXACT Python: pip runs inside a container of the base image (host
network, the host's pip indexes, find-links and CA bundle mounted read-only), so `docker build` itself
installs with --no-index and needs no network. Markers resolve as in the image (Debian's 3.11.2 is not the
host's 3.11.7)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from smartreco.containers.engine import EngineError, image_inspect
from smartreco.containers.stream import run_logged

Log = Callable[[str], None]
_PIP_KEYS = {"index-url": "PIP_INDEX_URL", "extra-index-url": "PIP_EXTRA_INDEX_URL",
             "find-links": "PIP_FIND_LINKS", "cert": "PIP_CERT", "trusted-host": "PIP_TRUSTED_HOST",
             "default-timeout": "PIP_DEFAULT_TIMEOUT"}


def host_pip_settings() -> dict[str, str]:
    """The host's effective pip settings (config files, then PIP_* variables) as PIP_* variables."""
    proc = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                          check=False)
    settings: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition("=")
        name = key.rsplit(".", 1)[-1]
        if name in _PIP_KEYS:
            settings[_PIP_KEYS[name]] = value.strip().strip("'\"")
    for env in _PIP_KEYS.values():
        if os.environ.get(env):
            settings[env] = os.environ[env]
    return settings


def _local_mounts(settings: dict[str, str]) -> list[str]:
    """Read-only bind mounts for every local path the pip settings name (file:// indexes, find-links)."""
    paths: set[str] = set()
    for env in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CERT"):
        for item in settings.get(env, "").split():
            path = item.removeprefix("file://")
            if path.startswith("/") and Path(path).exists():
                # a file index's pages link up to sibling folders (../files): mount the index's parent
                paths.add(str(Path(path).parent) if Path(path).name == "simple" else path)
    return [arg for p in sorted(paths) for arg in ("-v", f"{p}:{p}:ro")]


def wheelhouse_key(base_ref: str, requirements: list[str], constraints: list[str]) -> str:
    info = image_inspect(base_ref) or {}
    text = "\n".join([info.get("Id", base_ref), *requirements, "--", *constraints])
    return hashlib.sha256(text.encode()).hexdigest()


def build_wheelhouse(base_ref: str, out: Path, requirements: list[str], constraints: list[str],
                     log: Log) -> str:
    """Fill `out/wheels` (skipped when base, pins and constraints are unchanged); returns its key."""
    key = wheelhouse_key(base_ref, requirements, constraints)
    stamp = out / "wheelhouse.key"
    wheels = out / "wheels"
    if stamp.exists() and stamp.read_text().strip() == key and any(wheels.glob("*.whl")):
        log(f"[wheels] {out.name}: up to date ({len(list(wheels.glob('*.whl')))} wheels)")
        return key
    out.mkdir(parents=True, exist_ok=True)
    wheels.mkdir(exist_ok=True)
    stamp.unlink(missing_ok=True)
    (out / "requirements.txt").write_text("\n".join(requirements) + "\n")
    (out / "constraints.txt").write_text("\n".join(constraints) + "\n")
    settings = host_pip_settings()
    envs = [arg for k, v in settings.items() for arg in ("-e", f"{k}={v}")]
    # wheel: legacy setup.py sdists (kfp-server-api) need bdist_wheel, which the distro's pip lacks;
    # --find-links on the wheel folder reuses what an earlier (or failed) run already fetched
    script = ("python3 -m venv /tmp/venv && /tmp/venv/bin/pip install -q --upgrade pip wheel"
              " && /tmp/venv/bin/pip wheel --progress-bar off --wheel-dir /wheelhouse/wheels"
              " --find-links /wheelhouse/wheels -r /wheelhouse/requirements.txt"
              " -c /wheelhouse/constraints.txt")
    cmd = ["docker", "run", "--rm", "--network", "host", "--user", f"{os.getuid()}:{os.getgid()}",
           "-e", "HOME=/tmp", "-e", "PIP_DISABLE_PIP_VERSION_CHECK=1", "-e", "PIP_NO_CACHE_DIR=1", *envs,
           *_local_mounts(settings), "-v", f"{out.resolve()}:/wheelhouse", base_ref, "sh", "-c", script]
    log(f"[wheels] {out.name}: pip wheel for {len(requirements)} pins inside {base_ref} ...")
    count = 0

    def show(line: str) -> str | None:
        nonlocal count
        if line.startswith("Collecting "):
            count += 1
            if count % 20 == 0:
                return f"[wheels] {out.name}: {count} distributions resolved ..."
        if line.startswith(("Successfully saved", "Building wheel")):
            return f"[wheels] {out.name}: {line.strip()[:150]}"
        return None

    run_logged(cmd, out / "wheelhouse.log", show=show, echo=log, what=f"wheelhouse for {out.name}")
    _prune(wheels, (out / "wheelhouse.log").read_text(errors="replace"))
    _check_cpu_only(wheels)
    stamp.write_text(key + "\n")
    log(f"[wheels] {out.name}: {len(list(wheels.glob('*.whl')))} wheels")
    return key


def _prune(wheels: Path, pip_log: str) -> None:
    """Drop wheels this run did not use (older pins), so the build context holds one resolved set."""
    used = set(re.findall(r"/wheelhouse/wheels/(\S+?\.whl)", pip_log))  # fetched or reused
    used |= set(re.findall(r"filename=(\S+?\.whl)", pip_log))           # built from an sdist
    if not used:
        return
    for path in wheels.glob("*.whl"):
        if path.name not in used:
            path.unlink()


def _check_cpu_only(wheels: Path) -> None:
    """A bare `torch` pin pulls a CUDA build (GBs of nvidia-* wheels): refuse it with the way out."""
    names = [p.name for p in wheels.glob("*.whl")]
    cuda = [n for n in names if n.startswith("nvidia_") or (n.startswith("torch-") and "+cpu" not in n)]
    if cuda:
        raise EngineError(f"the wheelhouse holds CUDA wheels ({', '.join(sorted(cuda)[:3])}...): give pip "
                          "the PyTorch CPU index (PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu)")
