"""The project as a wheel for the image's last layer: built from a clean copy of exactly the packages
pyproject.toml lists, so a code change rebuilds one small layer and no stale build/ folder leaks in."""

from __future__ import annotations

import fnmatch
import hashlib
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from smartreco.containers.engine import EngineError
from smartreco.provenance import SOURCE_FILE, source_record

_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


def _find(meta: dict) -> dict:
    """pyproject.toml's ``[tool.setuptools.packages.find]`` table."""
    return meta.get("tool", {}).get("setuptools", {}).get("packages", {}).get("find", {})


def _pyproject(root: Path) -> dict:
    return tomllib.loads((root / "pyproject.toml").read_text())


def excluded_packages(root: Path) -> list[str]:
    """The package patterns pyproject.toml excludes (``smartreco.testing``: tests' helpers stay out of images)."""
    return list(_find(_pyproject(root)).get("exclude", []))


def _is_excluded(root: Path, path: Path, patterns: list[str]) -> bool:
    package = ".".join(path.relative_to(root).parent.parts)
    return any(fnmatch.fnmatch(package, pat) for pat in patterns)


def project_sources(root: Path) -> list[Path]:
    """pyproject.toml, the readme and the top-level package folders setuptools includes."""
    meta = _pyproject(root)
    include = _find(meta).get("include", [])
    dirs = [p for p in sorted(root.iterdir()) if p.is_dir() and (p / "__init__.py").exists()
            and any(fnmatch.fnmatch(p.name, pat) for pat in include)]
    readme = meta["project"].get("readme")
    files = [root / "pyproject.toml", *([root / readme] if isinstance(readme, str) else [])]
    return files + dirs


def _files(sources: list[Path], root: Path, excluded: list[str]) -> list[Path]:
    """The files of the sources that go into the wheel (an excluded package's files do not)."""
    out: list[Path] = []
    for src in sources:
        if src.is_file():
            out.append(src)
            continue
        for path in sorted(src.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc" \
                    and not any(part.endswith(".egg-info") for part in path.parts) \
                    and not _is_excluded(root, path, excluded):
                out.append(path)
    return out


def source_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in _files(project_sources(root), root, excluded_packages(root)):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def build_project_wheel(root: Path, out: Path) -> str:
    """Write the project wheel to `out` (only when the sources changed); returns the source hash."""
    key = source_hash(root)
    stamp = out / "project.key"
    if stamp.exists() and stamp.read_text().strip() == key and any(out.glob("*.whl")):
        return key
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="smartreco-src-") as tmp:
        for src in project_sources(root):
            if src.is_dir():
                shutil.copytree(src, Path(tmp) / src.name, ignore=_SKIP)
            else:
                shutil.copy2(src, Path(tmp) / src.name)
        package = Path(tmp) / "smartreco"
        if package.is_dir():  # the hash travels in the wheel: MLflow runs in the image tag it (provenance.py)
            (package / SOURCE_FILE).write_text(source_record(key))
        proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                               "--no-index", "-q", "-w", str(out), tmp], capture_output=True, text=True)
    if proc.returncode != 0:
        raise EngineError(f"building the project wheel failed: {proc.stderr.strip()[-300:]}")
    stamp.write_text(key + "\n")
    return key
