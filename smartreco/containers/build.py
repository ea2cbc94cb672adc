"""Build the images: base -> wheelhouse -> project wheel -> `docker build`, labelled with a content hash of
all of it, so an image whose inputs did not change is not rebuilt."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from smartreco import settings
from smartreco.containers.base import resolve_base
from smartreco.containers.debian_images import DEBIAN_IMAGES, build_debian_image
from smartreco.containers.engine import (
    EngineError,
    docker,
    image_inspect,
    image_label,
    require_build_disk,
    require_engine,
)
from smartreco.containers.project import build_project_wheel
from smartreco.containers.requirements import constraint_lines, project_version, requirement_lines
from smartreco.containers.spec import HASH_LABEL, IMAGES, SOURCE_LABEL, ImageSpec
from smartreco.containers.stream import run_logged
from smartreco.containers.wheel_server import INDEX_NAME, serve_wheels, write_wheel_index
from smartreco.containers.wheelhouse import build_wheelhouse

Log = Callable[[str], None]


@dataclass
class BuildResult:
    name: str
    tag: str
    base: str
    built: bool            # False: the image's inputs hash matched, nothing rebuilt
    seconds: float         # whole step (base, wheelhouse, docker build)
    build_seconds: float   # `docker build` alone (0 when skipped)
    size_bytes: int
    inputs_hash: str
    base_seconds: float = 0.0        # pulling or bootstrapping the base (0 when present)
    wheelhouse_seconds: float = 0.0  # pip wheel in the base image (~0 when up to date)

    def as_dict(self) -> dict:
        return asdict(self)


def context_dir(root: Path, spec: ImageSpec) -> Path:
    """What `smartreco images build` stages for the Dockerfile (inside the build context, git-ignored)."""
    return root / "build" / "images" / spec.name


def inputs_hash(root: Path, spec: ImageSpec, base_ref: str, wheel_key: str, project_key: str,
                version: str) -> str:
    base_id = (image_inspect(base_ref) or {}).get("Id", base_ref)
    parts = [spec.name, spec.tag, version, base_ref, base_id, wheel_key, project_key,
             hashlib.sha256((root / spec.dockerfile).read_bytes()).hexdigest(),
             hashlib.sha256((root / ".dockerignore").read_bytes()).hexdigest()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _git(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def build_one(root: Path, spec: ImageSpec, base_mode: str, log: Log, force: bool = False) -> BuildResult:
    start = time.perf_counter()
    base_ref = resolve_base(spec, base_mode, root, log)
    base_seconds = time.perf_counter() - start
    ctx = context_dir(root, spec)
    wheel_key = build_wheelhouse(base_ref, ctx, requirement_lines(root, spec.extra),
                                 constraint_lines(root / spec.venv), log)
    write_wheel_index(ctx / "wheels", ctx / INDEX_NAME)
    wheel_seconds = time.perf_counter() - start - base_seconds
    project_key = build_project_wheel(root, ctx / "project")
    version = project_version(root)
    digest = inputs_hash(root, spec, base_ref, wheel_key, project_key, version)
    # the source label too: an image built before it was written is built once more, so every image says what
    # sources it holds (rehearse up compares them with the checkout)
    if not force and image_label(spec.tag, HASH_LABEL) == digest and image_label(spec.tag, SOURCE_LABEL) == project_key:
        size = int((image_inspect(spec.tag) or {}).get("Size", 0))
        log(f"[build] {spec.tag}: up to date (inputs {digest[:12]}), not rebuilt")
        return BuildResult(spec.name, spec.tag, base_ref, False, time.perf_counter() - start, 0.0, size,
                           digest, base_seconds, wheel_seconds)
    old_id = (image_inspect(spec.tag) or {}).get("Id")
    require_build_disk(f"docker build {spec.tag}", spec.build_disk_gb)
    source = settings.SOURCE_URL.get() or _git(root, "remote", "get-url", "origin") \
        or "https://github.com/smartreco/smartreco"
    cmd = ["docker", "build", "--force-rm", "--network", "host", "-f", spec.dockerfile, "-t", spec.tag,
           "--build-arg", f"BASE_IMAGE={base_ref}", "--build-arg", f"VERSION={version}",
           "--build-arg", f"SOURCE_URL={source}",
           "--build-arg", f"REVISION={_git(root, 'rev-parse', 'HEAD')}",
           "--label", f"{HASH_LABEL}={digest}", "--label", f"{SOURCE_LABEL}={project_key}",
           "--label", f"org.smartreco.base-image={base_ref}"]
    log(f"[build] {spec.tag} from {base_ref} ({spec.dockerfile}) ...")
    t0 = time.perf_counter()

    def show(line: str) -> str | None:
        if line.startswith("Step "):
            return f"[build] {spec.name}: {line[:140]}"
        if line.startswith("Sending build context"):
            return f"[build] {spec.name}: {line.strip()[:100]}" if line.rstrip().endswith("B") else None
        return None

    with serve_wheels(ctx / "wheels") as wheelhouse_url:
        run_logged([*cmd, "--build-arg", f"WHEELHOUSE_URL={wheelhouse_url}", "."], ctx / "build.log",
                   show=show, echo=log, what=f"docker build {spec.tag}",
                   env={**os.environ, "DOCKER_BUILDKIT": "0"}, cwd=root)
    build_seconds = time.perf_counter() - t0
    info = image_inspect(spec.tag) or {}
    if old_id and old_id != info.get("Id"):
        docker(["image", "rm", old_id], check=False)  # the replaced image, if nothing uses it
    size = int(info.get("Size", 0))
    log(f"[build] {spec.tag}: built in {build_seconds:.0f} s, {size / 1e6:.0f} MB")
    return BuildResult(spec.name, spec.tag, base_ref, True, time.perf_counter() - start, build_seconds, size,
                       digest, base_seconds, wheel_seconds)


#: every image `smartreco images build` makes: the project's two, then the Debian-package stand-ins for the public
#: images the manifests name (the cluster rehearsal runs those)
ALL_IMAGES: tuple[str, ...] = (*IMAGES, *DEBIAN_IMAGES)


def build_images(root: Path, names: Iterable[str] = ALL_IMAGES, base_mode: str = "official",
                 log: Log = print, force: bool = False) -> list[BuildResult]:
    """Build (or confirm up to date) each named image; raises EngineError on the first failure."""
    require_engine()
    unknown = [n for n in names if n not in ALL_IMAGES]
    if unknown:
        raise EngineError(f"unknown image {unknown[0]!r} (have: {', '.join(ALL_IMAGES)})")
    return [build_one(root, IMAGES[name], base_mode, log, force) if name in IMAGES
            else BuildResult(name=name, **build_debian_image(root, DEBIAN_IMAGES[name], log, force))
            for name in names]
