"""`smartreco data ...`: describe, generate, validate."""

from __future__ import annotations

import json

import click

from smartreco.data.sources import load_source


@click.group()
def data() -> None:
    """Inspect, generate and validate canonical datasets."""


@data.command()
@click.option("--source", default="movielens", show_default=True, help="movielens, synthetic or a folder PATH")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
def describe(source: str, as_json: bool) -> None:
    """Counts, sparsity, share of positives and date range of a dataset."""
    summary = load_source(source).describe()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"source:          {summary['source']}")
    click.echo(f"users:           {summary['users']}")
    click.echo(f"items:           {summary['items']}")
    click.echo(f"interactions:    {summary['interactions']}")
    click.echo(f"sparsity:        {summary['sparsity']:.5f}")
    click.echo(f"positive share:  {summary['positive_share']:.4f}")
    click.echo(f"sessions:        {summary['sessions']}")
    click.echo(f"categories:      {summary['categories']}")
    click.echo(f"date range:      {summary['first_timestamp']} .. {summary['last_timestamp']}")
    types = ", ".join(f"{k}={v}" for k, v in summary["interaction_types"].items())
    click.echo(f"types:           {types}")
