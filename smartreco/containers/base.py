"""Base images: the official Python slim image where a registry answers, else one built from Debian's
packages (debootstrap bookworm, Python 3.11.2). Debian has no Python 3.12 (trixie's 3.13 cannot take
seldon-core 1.19's numpy<2), so the 3.12 base adds the host's CPython 3.12 build (the interpreter of
.venv-serving) to that bookworm root under /usr/local, where the official images keep theirs."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from smartreco import settings
from smartreco.containers.engine import EngineError, docker, image_inspect
from smartreco.containers.spec import ImageSpec

Log = Callable[[str], None]

SUITE = "bookworm"
BASE_REPO = "smartreco-base"
#: Debian packages of the bootstrapped root: Python 3.11 + venv, CA certificates, and the shared
#: libraries that wheels (lightgbm: libgomp) and a /usr/local CPython (ssl, sqlite, ctypes...) load.
DEBIAN_PACKAGES = ("python3,python3-venv,ca-certificates,libgomp1,libssl3,libffi8,libsqlite3-0,libbz2-1.0,"
                   "liblzma5,zlib1g,libreadline8,libncursesw6,libexpat1")
#: parts of a CPython install an image does not need (and a host's site-packages never goes in)
_PYTHON_SKIP = ("test", "idlelib", "tkinter", "turtledemo", "__pycache__", "site-packages", "ensurepip_cache")


def resolve_base(spec: ImageSpec, mode: str, root: Path, log: Log) -> str:
    """Image reference the build starts from; falls back to Debian (and says so) without a registry."""
    if mode not in ("official", "debian"):
        raise EngineError(f"--base must be official or debian, not {mode!r}")
    if mode == "official":
        if image_inspect(spec.official_base) is not None:
            return spec.official_base
        log(f"[base] pulling {spec.official_base} ...")
        try:
            pulled = docker(["pull", spec.official_base], check=False, timeout=300)
            reason = (pulled.stderr.strip().splitlines() or ["pull failed"])[-1]
        except subprocess.TimeoutExpired:
            pulled, reason = None, "no answer within 300 s"
        if pulled is not None and pulled.returncode == 0:
            return spec.official_base
        made = "using" if image_inspect(debian_tag(spec.python)) is not None else "building"
        log(f"[base] no registry reachable for {spec.official_base} ({reason[:160]}); "
            f"{made} the base from Debian's packages (debootstrap) instead")
    return debian_base(spec.python, root, log)


def debian_tag(python: str) -> str:
    return f"{BASE_REPO}:{SUITE}-py{python}"


def debian_base(python: str, root: Path, log: Log) -> str:
    """Tag of the Debian-built base for Python `python`, bootstrapping it once per engine."""
    if python == "3.11":
        return _bootstrap_bookworm(root, log)
    if python == "3.12":
        return _bookworm_with_host_python(python, root, log)
    raise EngineError(f"no Debian base recipe for Python {python} (have 3.11, 3.12)")


def debian_mirror() -> str:
    """The Debian mirror apt uses on this host (so debootstrap needs nothing apt does not)."""
    env = settings.DEBIAN_MIRROR.get()
    if env:
        return env
    texts = [Path(p).read_text(errors="replace") for p in
             ["/etc/apt/sources.list", *glob.glob("/etc/apt/sources.list.d/*")] if Path(p).is_file()]
    for text in texts:
        for url in re.findall(r"(?:^URIs:\s*|^deb\s+(?:\[[^\]]*\]\s+)?)(\S+)", text, flags=re.M):
            if url.rstrip("/").endswith("/debian"):
                return url
    return "http://deb.debian.org/debian"


def _bootstrap_bookworm(root: Path, log: Log) -> str:
    tag = debian_tag("3.11")
    if image_inspect(tag) is not None:
        return tag
    if shutil.which("debootstrap") is None:
        raise EngineError("no registry and no debootstrap: `apt-get install debootstrap` (as root) or use a "
                          "machine that can pull the official Python images")
    if os.geteuid() != 0:
        raise EngineError("debootstrap needs root to build the Debian base image; re-run as root")
    mirror = debian_mirror()
    work = root / "build" / "base"
    work.mkdir(parents=True, exist_ok=True)
    rootfs = Path(tempfile.mkdtemp(prefix=f"{SUITE}-", dir=work))
    log(f"[base] debootstrap {SUITE} from {mirror} (about 1-2 min) ...")
    try:
        proc = subprocess.run(["debootstrap", "--variant=minbase", f"--include={DEBIAN_PACKAGES}", SUITE,
                               str(rootfs), mirror], capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
            raise EngineError(f"debootstrap {SUITE} failed: {' | '.join(tail)}")
        shutil.rmtree(rootfs / "var" / "cache" / "apt" / "archives", ignore_errors=True)
        (rootfs / "var" / "cache" / "apt" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        log(f"[base] importing the root file system as {tag}")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run(["docker", "import", "--change", "ENV LANG=C.UTF-8",
                              "--change", 'CMD ["python3"]', "-", tag],
                             stdin=tar.stdout, capture_output=True, text=True)
        tar.wait()
        if imp.returncode != 0 or tar.returncode != 0:
            raise EngineError(f"docker import of the {SUITE} root failed: {imp.stderr.strip()[-200:]}")
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return tag


def host_python(version: str) -> Path:
    """Install prefix of the host's CPython `version` (pyenv, as scripts/setup.sh finds it)."""
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    for cand in sorted(glob.glob(f"{pyenv_root}/versions/{version}*"), reverse=True):
        exe = Path(cand) / "bin" / f"python{version}"
        if exe.exists() and re.fullmatch(rf"{re.escape(version)}\.\d+", Path(cand).name):
            return Path(cand)
    raise EngineError(f"no Python {version} under {pyenv_root}/versions to put into the Debian base "
                      f"(Debian {SUITE} has none); install it with `pyenv install {version}`")


def _bookworm_with_host_python(version: str, root: Path, log: Log) -> str:
    tag = debian_tag(version)
    if image_inspect(tag) is not None:
        return tag
    parent = _bootstrap_bookworm(root, log)
    prefix = host_python(version)
    log(f"[base] adding CPython {prefix.name} from {prefix} to {parent} as {tag}")
    ctx = root / "build" / "base" / f"py{version}"
    shutil.rmtree(ctx, ignore_errors=True)
    (ctx / "python" / "bin").mkdir(parents=True)
    for exe in (f"python{version}",):
        shutil.copy2(prefix / "bin" / exe, ctx / "python" / "bin" / exe)
    shutil.copytree(prefix / "lib", ctx / "python" / "lib", symlinks=True,
                    ignore=shutil.ignore_patterns(*_PYTHON_SKIP, "*.a", "pkgconfig"))
    (ctx / "python" / "lib" / f"python{version}" / "site-packages").mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {parent}\n"
        "COPY python/ /usr/local/\n"
        f"RUN ldconfig && ln -sf python{version} /usr/local/bin/python3"
        " && ln -sf python3 /usr/local/bin/python"
        f" && python3 -c \"import ssl, sqlite3, ctypes, venv, lzma, bz2, zlib, sys; print(sys.version)\"\n"
        f'LABEL org.smartreco.base="debootstrap {SUITE} + host CPython {prefix.name} in /usr/local"\n')
    proc = subprocess.run(["docker", "build", "--network", "host", "-t", tag, str(ctx)], capture_output=True,
                          text=True, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    shutil.rmtree(ctx, ignore_errors=True)
    if proc.returncode != 0:
        raise EngineError(f"building {tag} failed: {(proc.stdout + proc.stderr).strip()[-300:]}")
    return tag
