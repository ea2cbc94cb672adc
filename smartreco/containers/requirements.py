"""Requirement and constraint files for an image, read from pyproject.toml: the pins are written once
(the extras), and the tested venv's resolved set constrains what the image resolves to."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

from smartreco.errors import SmartRecoError


def requirement_lines(root: Path, extra: str) -> list[str]:
    """Core dependencies + the extra's pins, exactly as pyproject.toml states them."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    if extra not in extras:
        raise SmartRecoError(f"pyproject.toml has no extra {extra!r} (have: {', '.join(sorted(extras))})")
    return [*project.get("dependencies", []), *extras[extra]]


def project_version(root: Path) -> str:
    return tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]


def constraint_lines(venv: Path) -> list[str]:
    """`pip freeze` of the tested venv (without editable/URL lines), so the image gets the same versions
    as the venv the tests ran in; empty when the venv is absent (a fresh checkout resolves from the pins)."""
    python = venv / "bin" / "python"
    if not python.exists():
        return []
    proc = subprocess.run([str(python), "-m", "pip", "freeze", "--exclude-editable"],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return []
    keep = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if not line or line.startswith(("-", "#")) or " @ " in line or line.lower().startswith("smartreco=="):
            continue
        keep.append(line)
    return sorted(keep, key=str.lower)
