"""smartreco.containers.freshness: a project image is said to hold this checkout's code only when its source label
equals the checkout's source hash; a rehearsal's plan gets a line for each project image it runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartreco.containers import freshness
from smartreco.containers.spec import IMAGES, SOURCE_LABEL

pytestmark = pytest.mark.unit

SERVING = IMAGES["serving"].tag
PIPELINE = IMAGES["pipeline"].tag


@pytest.fixture
def engine_with(monkeypatch):
    """The engine's images as ``{tag: labels}`` (no engine needed)."""

    def install(images: dict[str, dict[str, str]]) -> None:
        monkeypatch.setattr(freshness, "image_inspect",
                            lambda ref: {"Config": {"Labels": images[ref]}} if ref in images else None)
        monkeypatch.setattr(freshness, "image_label",
                            lambda ref, key: (images.get(ref) or {}).get(key))

    return install


@pytest.mark.parametrize(
    ("labels", "state"),
    [({SOURCE_LABEL: "abc123"}, "current"), ({SOURCE_LABEL: "old999"}, "stale"), ({}, "unlabelled"), (None, "missing")],
)
def test_each_state_of_an_image(engine_with, labels, state):
    engine_with({} if labels is None else {SERVING: labels})
    got = freshness.image_source(SERVING, "abc123")
    assert got.state == state
    assert ("smartreco images build" in got.note) is (state != "current")


def test_only_the_project_images_a_plan_uses_are_checked(engine_with, monkeypatch, tmp_path: Path):
    (tmp_path / "pyproject.toml").write_text("")
    monkeypatch.setattr(freshness, "source_hash", lambda root: "abc123")
    engine_with({SERVING: {SOURCE_LABEL: "abc123"}, PIPELINE: {SOURCE_LABEL: "old999"}})
    got = freshness.project_image_sources(tmp_path, {SERVING, "smartreco-redis:bookworm"})
    assert [(s.image, s.state) for s in got] == [(SERVING, "current")]
    got = freshness.project_image_sources(tmp_path, {SERVING, PIPELINE})
    assert {s.image: s.state for s in got} == {SERVING: "current", PIPELINE: "stale"}


def test_without_a_checkout_nothing_is_claimed(engine_with, tmp_path: Path):
    engine_with({SERVING: {SOURCE_LABEL: "abc123"}})
    assert freshness.project_image_sources(tmp_path, {SERVING}) == []
