"""The one table of image mappings the rehearsal applies, printed by ``rehearse up`` and shown in the README:

- public images the overlays name that cannot be pulled here (``redis:7.2-alpine``, ``postgres:16-alpine``) ->
  the images ``smartreco images build`` makes from Debian's packages (:data:`PUBLIC_IMAGES`, declared);
- the project's own images under whatever registry an overlay renames them to (production:
  ``registry.example.com/smartreco/smartreco-serving:0.1.0``, or yours after ``kustomize edit set image``) -> the
  local build of that image (:data:`PROJECT_REPOSITORIES`: matched on the reference's last path component, so a
  renamed registry needs no new entry; the registry's tag is reported when it is not the local one).

Anything else an overlay names must already be on the engine."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from smartreco import images


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

#: the project's image repositories (the last path component of a reference) -> the local tag that is built here
PROJECT_REPOSITORIES: dict[str, Callable[[], str]] = {
    "smartreco-serving": images.serving_image,
    "smartreco-pipeline": images.pipeline_image,
}

#: the pod sandbox ("pause") container: registry.k8s.io/pause cannot be pulled here; the redis image's
#: `sleep infinity` holds the pod's network namespace instead
PAUSE_IMAGE = "smartreco-redis:bookworm"
PAUSE_COMMAND = ("sleep", "infinity")


def _split(ref: str) -> tuple[str, str]:
    """(repository path, tag) of an image reference (a digest counts as the tag)."""
    if "@" in ref:
        path, _, digest = ref.partition("@")
        return path, "@" + digest
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    return (ref[:colon], ref[colon + 1 :]) if colon > slash else (ref, "latest")


def project_local(ref: str) -> str | None:
    """The local project image a (registry) reference stands for; None when it is not a project image."""
    path, _ = _split(ref)
    make = PROJECT_REPOSITORIES.get(path.rsplit("/", 1)[-1])
    return make() if make else None


def local_image(ref: str) -> str:
    """The image the rehearsal runs for manifest image ``ref``."""
    mapped = PUBLIC_IMAGES.get(ref)
    if mapped:
        return mapped.local
    return project_local(ref) or ref


def _project_row(ref: str, local: str) -> dict[str, str]:
    _, tag = _split(ref)
    _, local_tag = _split(local)
    note = "the project's image as `smartreco images build` makes it here"
    if tag != local_tag:
        note += f" (the manifest's tag {tag} is not the local {local_tag})"
    return {"manifest": ref, "rehearsal": local, "differs": note}


def table(refs: Iterable[str] | None = None) -> list[dict[str, str]]:
    """Rows ``{manifest, rehearsal, differs}``: every declared public image, then each project image in ``refs``
    (the rendered objects' images) that runs under another name here."""
    rows = [{"manifest": m.public, "rehearsal": m.local, "differs": m.differs} for m in PUBLIC_IMAGES.values()]
    for ref in sorted(set(refs or ())):
        local = project_local(ref)
        if local is not None and local != ref and ref not in PUBLIC_IMAGES:
            rows.append(_project_row(ref, local))
    return rows


def plan_images(pods: Iterable) -> list[str]:
    """The manifest images of a plan's pods (``translate.PodSpec``), for :func:`table`."""
    return sorted({c.manifest_image for p in pods for c in p.all_containers()})
