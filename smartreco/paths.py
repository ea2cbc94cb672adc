"""Where things live: the project root (repo checkout or image) and the run/artifact folders."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """SMARTRECO_HOME if set (images), else the checkout that holds this package."""
    env = os.environ.get("SMARTRECO_HOME")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent


def runs_dir() -> Path:
    """Working folder for local runs (MLflow db, Feast stores, pipeline roots, logs)."""
    path = Path(os.environ.get("SMARTRECO_RUNS", project_root() / "runs"))
    path.mkdir(parents=True, exist_ok=True)
    return path
