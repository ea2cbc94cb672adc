"""The one declared table of public images the overlays name that cannot be pulled here, and the images
``smartreco images build`` makes from Debian's packages in their place (``rehearse up`` prints it, the README
shows it). Anything else an overlay names must be a project image (``smartreco-*``) or already on the engine."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MappedImage:
    public: str  # what the manifest says
    local: str  # what the rehearsal runs instead (built by `smartreco images build`)
    build: str  # the key of smartreco.containers.debian_images.DEBIAN_IMAGES that makes it
    differs: str  # what is not the same, said where the table is printed


PUBLIC_IMAGES: dict[str, MappedImage] = {
    m.public: m
    for m in (
        MappedImage(
            "redis:7.2-alpine",
            "smartreco-redis:bookworm",
            "redis",
            "Debian bookworm's redis-server 7.0 (not 7.2), glibc not musl; same flags and redis-cli",
        ),
        MappedImage(
            "postgres:16-alpine",
            "smartreco-postgres:bookworm",
            "postgres",
            "Debian bookworm's PostgreSQL 15 (not 16); an entrypoint that does what the official one "
            "does with POSTGRES_USER/PASSWORD/DB and PGDATA",
        ),
    )
}

#: the pod sandbox ("pause") container: registry.k8s.io/pause cannot be pulled here; the redis image's
#: `sleep infinity` holds the pod's network namespace instead
PAUSE_IMAGE = "smartreco-redis:bookworm"
PAUSE_COMMAND = ("sleep", "infinity")


def local_image(ref: str) -> str:
    """The image the rehearsal runs for manifest image ``ref``."""
    mapped = PUBLIC_IMAGES.get(ref)
    return mapped.local if mapped else ref


def table() -> list[dict[str, str]]:
    return [{"manifest": m.public, "rehearsal": m.local, "differs": m.differs} for m in PUBLIC_IMAGES.values()]
