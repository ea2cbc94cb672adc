"""`smartreco rehearse up|apply|down`: run an overlay's rendered objects as containers on the local engine
(smartreco.rehearse); what is not rehearsed is printed, never hidden."""

from __future__ import annotations

import json
from pathlib import Path

import click

from smartreco.rehearse import session


@click.group()
def rehearse() -> None:
    """Cluster rehearsal: the rendered manifests as containers on the local Docker engine."""


def _log(line: str) -> None:
    click.echo(line, err=True)


@rehearse.command()
@click.option("--overlay", type=click.Choice(["local", "production"]), default="local", show_default=True)
@click.option(
    "--replicas",
    type=click.IntRange(min=1),
    default=None,
    help="replicas of every Deployment and predictor (StatefulSets keep theirs); default: as rendered",
)
@click.option(
    "--models",
    "models_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="rehearsal patch: fill the graph pod's /models from this folder instead of model-fetch (MLflow)",
)
@click.option("--name", default=session.DEFAULT_NAME, show_default=True, help="the rehearsal's name (engine label)")
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=900.0,
    show_default=True,
    help="seconds to wait for every pod's readiness",
)
@click.option("--skip", multiple=True, help="leave out this workload (metadata.name; listed as not rehearsed)")
@click.option(
    "--forward",
    "forwards",
    multiple=True,
    metavar="SERVICE:HOST_PORT",
    help="publish the Service's first port on 127.0.0.1:HOST_PORT, as `kubectl port-forward` (e.g. mlflow:5000)",
)
@click.option("--json", "as_json", is_flag=True, help="print endpoints, Secrets file and containers as JSON")
@click.option("--dry-run", is_flag=True, help="print what would run (JSON, with every docker command); no engine")
def up(
    overlay: str,
    replicas: int | None,
    models_dir: Path | None,
    name: str,
    timeout_s: float,
    skip: tuple[str, ...],
    forwards: tuple[str, ...],
    as_json: bool,
    dry_run: bool,
) -> None:
    """Render OVERLAY, start its Deployments, StatefulSets and the SeldonDeployment's predictor; the previous
    rehearsal of the same name is removed first, and everything is removed again on failure or Ctrl-C."""
    if dry_run:
        click.echo(
            json.dumps(
                session.dry_run(
                    overlay,
                    replicas=replicas,
                    models_patch=models_dir is not None,
                    name=name,
                    skip=frozenset(skip),
                    forwards=forwards,
                ),
                indent=1,
            )
        )
        return
    out = session.up(
        overlay,
        replicas=replicas,
        models_dir=models_dir,
        name=name,
        timeout_s=timeout_s,
        skip=frozenset(skip),
        forwards=forwards,
        log=_log,
    )
    if as_json:
        click.echo(json.dumps(out, indent=1))
        return
    for key, value in out["endpoints"].items():
        if key not in ("services", "pods", "forwards") and value:
            click.echo(f"{key:12s} {value}")
    click.echo(f"{'secrets':12s} {out['secrets_file']}")


@rehearse.command()
@click.option(
    "-f",
    "file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="a SeldonDeployment manifest (what `kubectl apply -f` would be given)",
)
@click.option("--models", "models_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None)
@click.option("--name", default=session.DEFAULT_NAME, show_default=True)
@click.option("--timeout", "timeout_s", type=float, default=900.0, show_default=True)
def apply(file: Path, models_dir: Path | None, name: str, timeout_s: float) -> None:
    """Roll the running rehearsal's predictor to FILE: new pods ready before the old ones stop."""
    click.echo(json.dumps(session.apply(file, name=name, models_dir=models_dir, timeout_s=timeout_s, log=_log)))


@rehearse.command()
@click.option("--name", default=session.DEFAULT_NAME, show_default=True)
@click.option("--keep-data", is_flag=True, help="keep the volumes (databases, event log) and the Secrets")
def down(name: str, keep_data: bool) -> None:
    """Remove every container, network and volume the rehearsal started."""
    click.echo(json.dumps(session.down(name, keep_data=keep_data)))
