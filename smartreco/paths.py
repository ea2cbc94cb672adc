"""Where things live: the project root (repo checkout or image) and the run/artifact folders."""

from __future__ import annotations

from pathlib import Path

from smartreco import settings


def project_root() -> Path:
    """SMARTRECO_HOME if set (images), else the checkout that holds this package."""
    return settings.HOME.get()


def runs_dir() -> Path:
    """Working folder for local runs (MLflow db, Feast stores, pipeline roots, logs)."""
    path = settings.RUNS.get()
    path.mkdir(parents=True, exist_ok=True)
    return path
