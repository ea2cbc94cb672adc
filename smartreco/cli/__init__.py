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
    from smartreco.cli import data

    cli.add_command(data.data)


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
