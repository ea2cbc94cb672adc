"""MLflow run tags that name the code: a source checkout's commit and whether tracked files differ from it
(the wheel's source hash is checked with the wheel build in test_containers_unit)."""

from __future__ import annotations

import subprocess

import pytest

from smartreco import provenance

pytestmark = [pytest.mark.unit]


def _git(repo, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def test_checkout_commit_and_dirty_flag(tmp_path):
    repo = tmp_path / "repo"
    (repo / "smartreco").mkdir(parents=True)
    (repo / "smartreco" / "__init__.py").write_text("x = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    head = _git(repo, "rev-parse", "HEAD").strip()
    tags = provenance.run_tags(repo / "smartreco")
    assert tags[provenance.GIT_COMMIT_TAG] == head and tags[provenance.GIT_DIRTY_TAG] == "false"
    (repo / "untracked.txt").write_text("not part of the code\n")
    assert provenance.run_tags(repo / "smartreco")[provenance.GIT_DIRTY_TAG] == "false"
    (repo / "smartreco" / "__init__.py").write_text("x = 2\n")
    assert provenance.run_tags(repo / "smartreco")[provenance.GIT_DIRTY_TAG] == "true"
    # an installed wheel's source hash wins: the code is exactly the wheel's, whatever folder holds it
    (repo / "smartreco" / provenance.SOURCE_FILE).write_text(provenance.source_record("abc"))
    tags = provenance.run_tags(repo / "smartreco")
    assert tags[provenance.SOURCE_HASH_TAG] == "abc" and provenance.GIT_COMMIT_TAG not in tags


def test_no_checkout_no_commit(tmp_path):
    assert provenance.checkout_tags(tmp_path) == {}


def test_checkout_label_names_the_short_commit_and_uncommitted_changes(tmp_path):
    assert provenance.checkout_label(tmp_path) == "unknown"
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.py").write_text("x = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    short = _git(repo, "rev-parse", "HEAD").strip()[:7]
    assert provenance.checkout_label(repo) == short
    (repo / "a.py").write_text("x = 2\n")
    assert provenance.checkout_label(repo) == f"{short}+uncommitted changes"
