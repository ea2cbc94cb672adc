"""Render an overlay the way ``kubectl apply -k`` would (``kubectl kustomize``) and read its objects."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from smartreco.errors import SmartRecoError
from smartreco.paths import project_root

OVERLAYS = ("local", "production")


class RenderError(SmartRecoError):
    """No kubectl, an unknown overlay, or kustomize refused the overlay."""


def kubectl() -> str:
    """The kubectl on PATH, else the one ``scripts/tools.sh`` puts into the project's .venv/bin."""
    found = shutil.which("kubectl") or shutil.which("kubectl", path=str(project_root() / ".venv" / "bin"))
    if not found:
        raise RenderError("no kubectl on PATH or in .venv/bin (bash scripts/tools.sh installs it)")
    return found


def overlay_dir(overlay: str) -> Path:
    if overlay not in OVERLAYS:
        raise RenderError(f"overlay {overlay!r}: the rehearsal runs {', '.join(OVERLAYS)}")
    return project_root() / "manifests" / "overlays" / overlay


def render(overlay: str) -> str:
    """The overlay's rendered YAML (what the cluster would be given)."""
    proc = subprocess.run(
        [kubectl(), "kustomize", str(overlay_dir(overlay))], capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0:
        raise RenderError(f"kubectl kustomize {overlay}: {(proc.stderr.strip().splitlines() or ['failed'])[-1]}")
    return proc.stdout


def load_objects(text: str) -> list[dict[str, Any]]:
    """The Kubernetes objects of a multi-document YAML (empty documents and ``List`` wrappers unrolled)."""
    out: list[dict[str, Any]] = []
    for doc in yaml.safe_load_all(text):
        if not isinstance(doc, dict):
            continue
        if doc.get("kind") == "List":
            out.extend(item for item in doc.get("items") or [] if isinstance(item, dict))
        else:
            out.append(doc)
    return out


def load_file(path: str | Path) -> list[dict[str, Any]]:
    """Objects of a manifest file (``rehearse apply -f``)."""
    try:
        return load_objects(Path(path).read_text())
    except FileNotFoundError:
        raise RenderError(f"{path}: not found") from None
    except yaml.YAMLError as exc:
        raise RenderError(f"{path}: not YAML ({exc})") from None
