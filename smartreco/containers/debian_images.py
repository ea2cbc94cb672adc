"""Images of public software the manifests name but that cannot be pulled here (``redis:7.2-alpine``,
``postgres:16-alpine``), made from Debian bookworm's packages on the project's Debian base, so the cluster
rehearsal (smartreco/rehearse/public_images.py maps the manifest's names to these) can run the overlays'
StatefulSets. Each keeps the public image's contract the manifests rely on: redis's ENTRYPOINT is
``redis-server`` (the manifest's ``args`` are its flags); postgres's entrypoint initialises ``$PGDATA`` from
``POSTGRES_USER``/``POSTGRES_PASSWORD``/``POSTGRES_DB`` on first start and listens on every address, as the
official image's does, running as uid 999 (the official images' user, the manifests' runAsUser)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from smartreco.containers.base import debian_base
from smartreco.containers.engine import EngineError, image_inspect, image_label
from smartreco.containers.spec import HASH_LABEL

Log = Callable[[str], None]

_APT = "apt-get update && apt-get install -y --no-install-recommends {packages} && rm -rf /var/lib/apt/lists/*"
#: uid/gid 999 as in the official redis/postgres images (the manifests' runAsUser/fsGroup)
_USER = (
    'echo "{name}:x:999:999:{name}:{home}:/bin/sh" >> /etc/passwd && echo "{name}:x:999:" >> /etc/group '
    "&& mkdir -p {home} && chown 999:999 {home}"
)

POSTGRES_ENTRYPOINT = r"""#!/bin/sh
# What the official postgres image's entrypoint does with the variables the manifest sets.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  test -n "${POSTGRES_PASSWORD:-}" || { echo "POSTGRES_PASSWORD is required" >&2; exit 1; }
  mkdir -p "$PGDATA" && chmod 700 "$PGDATA"
  pw="$(mktemp)"
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pw"
  initdb -D "$PGDATA" --username="$POSTGRES_USER" --pwfile="$pw" --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pw"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  if [ "$POSTGRES_DB" != "postgres" ]; then
    psql -v ON_ERROR_STOP=1 -h /var/run/postgresql -U "$POSTGRES_USER" -d postgres \
      -c "CREATE DATABASE \"$POSTGRES_DB\"" >/dev/null
  fi
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "initialised $PGDATA (database $POSTGRES_DB, user $POSTGRES_USER)"
fi
exec "$@"
"""


@dataclass(frozen=True)
class DebianImage:
    name: str  # `smartreco images build --only NAME`
    tag: str
    dockerfile: str  # body after FROM
    files: tuple[tuple[str, str], ...] = ()  # (name in the build context, content)


DEBIAN_IMAGES: dict[str, DebianImage] = {
    "redis": DebianImage(
        "redis",
        "smartreco-redis:bookworm",
        f"RUN {_USER.format(name='redis', home='/data')} && {_APT.format(packages='redis-server redis-tools')}\n"
        'ENTRYPOINT ["redis-server"]\n'
        'LABEL org.opencontainers.image.title="smartreco-redis" '
        'org.opencontainers.image.description="Debian bookworm redis-server, stands in for redis:7.2-alpine in '
        'smartreco rehearse"\n',
    ),
    "postgres": DebianImage(
        "postgres",
        "smartreco-postgres:bookworm",
        f"RUN {_USER.format(name='postgres', home='/var/lib/postgresql')} "
        "&& mkdir -p /etc/postgresql-common "
        "&& echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf "
        f"&& {_APT.format(packages='postgresql-15')}\n"
        "ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data\n"
        "COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh\n"
        'ENTRYPOINT ["/bin/sh", "/usr/local/bin/docker-entrypoint.sh"]\n'
        'CMD ["postgres"]\n'
        "USER 999:999\n"
        'LABEL org.opencontainers.image.title="smartreco-postgres" '
        'org.opencontainers.image.description="Debian bookworm PostgreSQL 15, stands in for postgres:16-alpine in '
        'smartreco rehearse"\n',
        (("docker-entrypoint.sh", POSTGRES_ENTRYPOINT),),
    ),
}


def dockerfile_text(spec: DebianImage, base: str) -> str:
    return f"FROM {base}\n{spec.dockerfile}"


def inputs_hash(spec: DebianImage, base: str) -> str:
    base_id = (image_inspect(base) or {}).get("Id", base)
    parts = [spec.tag, base, base_id, dockerfile_text(spec, base), *(f"{n}\n{c}" for n, c in spec.files)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def build_debian_image(root: Path, spec: DebianImage, log: Log, force: bool = False) -> dict:
    """Build one image (skipped when its inputs hash is unchanged); returns BuildResult-shaped fields."""
    start = time.perf_counter()
    base = debian_base("3.11", root, log)
    digest = inputs_hash(spec, base)
    if not force and image_label(spec.tag, HASH_LABEL) == digest:
        log(f"[build] {spec.tag}: up to date (inputs {digest[:12]}), not rebuilt")
        return {
            "tag": spec.tag,
            "base": base,
            "built": False,
            "seconds": time.perf_counter() - start,
            "build_seconds": 0.0,
            "size_bytes": int((image_inspect(spec.tag) or {}).get("Size", 0)),
            "inputs_hash": digest,
        }
    ctx = root / "build" / "images" / spec.name
    shutil.rmtree(ctx, ignore_errors=True)
    ctx.mkdir(parents=True)
    (ctx / "Dockerfile").write_text(dockerfile_text(spec, base))
    for name, content in spec.files:
        (ctx / name).write_text(content)
    log(f"[build] {spec.tag} from {base} (Debian packages) ...")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            "docker",
            "build",
            "--force-rm",
            "--network",
            "host",
            "-t",
            spec.tag,
            "--label",
            f"{HASH_LABEL}={digest}",
            str(ctx),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
    (ctx / "build.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise EngineError(
            f"docker build {spec.tag} failed (log {ctx / 'build.log'}): {(proc.stdout + proc.stderr).strip()[-400:]}"
        )
    build_seconds = time.perf_counter() - t0
    size = int((image_inspect(spec.tag) or {}).get("Size", 0))
    log(f"[build] {spec.tag}: built in {build_seconds:.0f} s, {size / 1e6:.0f} MB")
    return {
        "tag": spec.tag,
        "base": base,
        "built": True,
        "seconds": time.perf_counter() - start,
        "build_seconds": build_seconds,
        "size_bytes": size,
        "inputs_hash": digest,
    }
