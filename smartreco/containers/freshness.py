"""Whether a project image holds this checkout's code: what ``rehearse up`` says before it runs the images.

The rehearsal runs whatever ``smartreco-pipeline`` / ``smartreco-serving`` image the engine has; after an edit
that is the code of the last ``smartreco images build``, not the checkout's, and a rehearsal (or a benchmark on
it) would silently measure old code. Each image carries the source hash of the project wheel inside
(:data:`~smartreco.containers.spec.SOURCE_LABEL`), compared here with the checkout's
(:func:`~smartreco.containers.project.source_hash`): a label read, no build, no container.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from smartreco.containers.engine import image_inspect, image_label
from smartreco.containers.project import source_hash
from smartreco.containers.spec import IMAGES, SOURCE_LABEL

REBUILD = "run `smartreco images build`"


@dataclass(frozen=True)
class ImageSource:
    image: str
    state: str  # current | stale | unlabelled | missing
    note: str

    def as_dict(self) -> dict[str, str]:
        return {"image": self.image, "state": self.state, "note": self.note}


def image_source(tag: str, checkout_hash: str) -> ImageSource:
    """``tag``'s code against the checkout whose source hash is ``checkout_hash`` (one ``docker image inspect``;
    a second only to tell a missing image from one without the label)."""
    built = image_label(tag, SOURCE_LABEL)
    if built is None:
        if image_inspect(tag) is None:
            return ImageSource(tag, "missing", f"not in the engine: {REBUILD}")
        return ImageSource(tag, "unlabelled", f"built before images recorded their sources: {REBUILD}")
    if built != checkout_hash:
        return ImageSource(tag, "stale", f"holds other code than this checkout (sources {built[:12]}, checkout "
                                         f"{checkout_hash[:12]}): {REBUILD} to rehearse this code")
    return ImageSource(tag, "current", f"built from this checkout (sources {built[:12]})")


def project_image_sources(root: Path, used: set[str]) -> list[ImageSource]:
    """Each project image among the image references ``used`` (a plan's), against the checkout at ``root``."""
    tags = [spec.tag for spec in IMAGES.values() if spec.tag in used]
    if not tags or not (root / "pyproject.toml").is_file():  # no checkout to compare with (an installed wheel)
        return []
    checkout = source_hash(root)
    return [image_source(tag, checkout) for tag in tags]
