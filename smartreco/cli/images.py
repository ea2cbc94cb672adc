"""`smartreco images ...`: build the pipeline and serving images (tags from smartreco.images)."""

from __future__ import annotations

import json

import click

from smartreco.containers import build_images
from smartreco.containers.build import ALL_IMAGES
from smartreco.paths import project_root


@click.group()
def images() -> None:
    """Build the container images (pipeline steps, Seldon graph nodes)."""


@images.command()
@click.option("--base", "base_mode", type=click.Choice(["official", "debian"]), default="official",
              show_default=True,
              help="official Python slim images (Debian-built ones when no registry answers) or Debian-built")
@click.option("--only", "only", type=click.Choice(sorted(ALL_IMAGES)), multiple=True,
              help="build just this image")
@click.option("--force", is_flag=True, help="rebuild even when the inputs hash is unchanged")
@click.option("--json", "as_json", is_flag=True, help="print the results as JSON at the end")
def build(base_mode: str, only: tuple[str, ...], force: bool, as_json: bool) -> None:
    """Build smartreco-pipeline and smartreco-serving, and the Debian-package stand-ins for redis and postgres
    (the cluster rehearsal's); an image whose inputs did not change is kept."""
    results = build_images(project_root(), only or ALL_IMAGES, base_mode,
                           log=lambda msg: click.echo(msg, err=True), force=force)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in results], indent=2))
        return
    for r in results:
        state = f"built in {r.build_seconds:.0f} s" if r.built else "up to date"
        click.echo(f"{r.tag:32s} {state:18s} {r.size_bytes / 1e6:8.0f} MB  base {r.base}")
