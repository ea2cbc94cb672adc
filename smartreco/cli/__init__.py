"""`smartreco` command line (ARCHITECTURE §8). One module per command group, each a thin shell over
the library; a SmartRecoError becomes a one-line message and exit code 1."""

from __future__ import annotations

import sys

import click

from smartreco import __version__
from smartreco.errors import SmartRecoError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="smartreco")
def cli() -> None:
    """SmartReco: hybrid recommendations on Kubeflow, Feast, MLflow and Seldon."""


def _register() -> None:
    # each group registers only once it works end to end ("only commands that work are listed")
    from smartreco.cli import train

    cli.add_command(train.train)
    from smartreco.cli import data, images

    cli.add_command(data.data)
    cli.add_command(images.images)
    from smartreco.cli import ab

    cli.add_command(ab.ab)
    from smartreco.cli import events

    cli.add_command(events.events)
    from smartreco.cli import serve

    cli.add_command(serve.serve)
    cli.add_command(serve.recommend_cmd)
    cli.add_command(serve.feedback_cmd)
    from smartreco.cli import evaluate

    cli.add_command(evaluate.evaluate)
    from smartreco.cli import drift, pipeline

    cli.add_command(pipeline.pipeline)
    cli.add_command(drift.drift)
    from smartreco.cli import web

    cli.add_command(web.web)
    from smartreco.cli import rehearse

    cli.add_command(rehearse.rehearse)
    from smartreco.cli import items

    cli.add_command(items.items)


def main(argv: list[str] | None = None) -> int:
    _register()
    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code or 0)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except SmartRecoError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
