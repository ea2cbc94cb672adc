"""Which code made a training run: the source hash of the project wheel, tagged on every MLflow run.

Why: the pipeline image has no git, so MLflow records no commit for the runs its steps make ("Failed to
import Git"), and the image's ``org.opencontainers.image.revision`` label names the commit the image was
last *built* at: images are rebuilt only when their inputs change, so after a commit that touches no
packaged file the label names an older commit. The project wheel's source hash
(``smartreco.containers.project.source_hash``, the key that decides a rebuild) names exactly the code the
image runs: ``smartreco images build`` writes it into the wheel as ``SOURCE_FILE`` and a run reads it back
(``run_tags``). In a source checkout (an editable install) the file is absent; there the checkout's commit is
tagged under MLflow's own name (``mlflow.source.git.commit``, shown in its UI), with whether the tracked files
differed from it: MLflow finds no commit by itself in KFP steps, whose entry point is kfp's executor.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from smartreco import __version__

#: written into the ``smartreco`` package of the project wheel (never into the source tree)
SOURCE_FILE = "_build_source.json"
#: MLflow run tags
SOURCE_HASH_TAG = "smartreco.source_hash"
VERSION_TAG = "smartreco.version"
GIT_COMMIT_TAG = "mlflow.source.git.commit"
GIT_DIRTY_TAG = "smartreco.source_dirty"


def source_record(source_hash: str) -> str:
    """The content of ``SOURCE_FILE`` for a wheel built from sources with this hash."""
    return json.dumps({"source_hash": source_hash}) + "\n"


def packaged_source_hash(package_dir: Path | None = None) -> str | None:
    """The source hash the installed wheel was built from; None in a source checkout (no file)."""
    path = (package_dir or Path(__file__).parent) / SOURCE_FILE
    try:
        value = json.loads(path.read_text())["source_hash"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, str) and value else None


def _git(checkout: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(checkout), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def checkout_tags(checkout: Path) -> dict[str, str]:
    """The commit of a source checkout and whether its tracked files differ from it; {} outside one."""
    if not (checkout / ".git").exists():
        return {}
    commit = (_git(checkout, "rev-parse", "HEAD") or "").strip()
    if not commit:
        return {}
    status = _git(checkout, "status", "--porcelain", "--untracked-files=no")
    return {GIT_COMMIT_TAG: commit, GIT_DIRTY_TAG: "unknown" if status is None else str(bool(status.strip())).lower()}


def checkout_label(checkout: Path) -> str:
    """What a benchmark result names its code by: the short commit, ``+uncommitted changes`` when tracked files
    differ from it (:func:`checkout_tags`), or ``unknown`` outside a checkout."""
    tags = checkout_tags(checkout)
    if not tags:
        return "unknown"
    dirty = {"true": "+uncommitted changes", "unknown": "+unknown changes"}.get(tags[GIT_DIRTY_TAG], "")
    return tags[GIT_COMMIT_TAG][:7] + dirty


def run_tags(package_dir: Path | None = None) -> dict[str, str]:
    """Tags naming the code of a run: the package version, and the wheel's source hash where installed
    from one (the images), else the source checkout's commit."""
    package_dir = package_dir or Path(__file__).parent
    tags = {VERSION_TAG: __version__}
    source_hash = packaged_source_hash(package_dir)
    if source_hash:
        tags[SOURCE_HASH_TAG] = source_hash
    else:
        tags.update(checkout_tags(package_dir.parent))
    return tags
