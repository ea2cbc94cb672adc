"""The two images, defined once: tag (from smartreco.images), Dockerfile, extra, Python, bases."""

from __future__ import annotations

from dataclasses import dataclass

from smartreco import images


@dataclass(frozen=True)
class ImageSpec:
    name: str            # short name: build folder, CLI choice
    tag: str             # smartreco-<name>:<version>
    dockerfile: str      # relative to the project root (the build context)
    extra: str           # pyproject.toml extra holding the pins
    python: str          # major.minor the image runs
    official_base: str   # registry image a real build starts from
    venv: str            # the tested venv whose resolved set constrains the wheelhouse
    build_disk_gb: float  # free disk the engine needs for a from-scratch build (the image, plus pip's unpacking)

    @property
    def repository(self) -> str:
        return self.tag.rsplit(":", 1)[0]


IMAGES: dict[str, ImageSpec] = {
    "pipeline": ImageSpec("pipeline", images.PIPELINE_IMAGE, "components/Dockerfile", "pipeline", "3.11",
                          "python:3.11-slim", ".venv", 4.0),
    "serving": ImageSpec("serving", images.SERVING_IMAGE, "inference_graph/Dockerfile", "serving", "3.12",
                         "python:3.12-slim", ".venv-serving", 2.0),
}

#: image label holding the content hash of everything the image was built from
HASH_LABEL = "org.smartreco.inputs-hash"
#: image label holding the source hash of the project wheel inside (smartreco.containers.project.source_hash): what
#: ``rehearse up`` compares with the checkout, so a rehearsal of stale images says so
SOURCE_LABEL = "org.smartreco.source-hash"
