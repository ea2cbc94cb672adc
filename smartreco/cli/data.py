"""`smartreco data ...`: describe, generate, validate."""

from __future__ import annotations

import json

import click

from smartreco.data.sources import load_source
from smartreco.errors import DataError


@click.group()
def data() -> None:
    """Inspect, generate and validate canonical datasets."""


@data.command()
@click.option("--source", default="movielens", show_default=True, help="movielens, synthetic or a folder")
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


def _positive_int(flag: str, value: str | None) -> int | None:
    """Sizes are parsed here, not by click, so a bad one is a one-line error (exit 1), not a usage dump."""
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise DataError(f"{flag}: must be a positive integer, got {value!r}")
    return number


@data.command()
@click.option("--users", required=True, metavar="N", help="number of users (> 0)")
@click.option("--items", required=True, metavar="N", help="number of items (> 0)")
@click.option("--interactions", required=True, metavar="N", help="number of interactions (> 0)")
@click.option("--seed", type=int, default=7, show_default=True, help="same seed => byte-identical files")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="output folder")
@click.option("--chunk-rows", default=None, metavar="N", help="rows per parquet part (default 1,000,000)")
@click.option("--overwrite", is_flag=True, help="replace a dataset already in --out")
def generate(
    users: str, items: str, interactions: str, seed: int, out_dir: str, chunk_rows: str | None,
    overwrite: bool,
) -> None:
    """Synthetic shop data (latent tastes, sessions, channels) streamed to partitioned parquet."""
    from smartreco.data.synthetic import DEFAULT_CHUNK_ROWS, generate_to_parquet

    sizes = [_positive_int(f"--{name}", v) for name, v in (("users", users), ("items", items),
                                                           ("interactions", interactions))]
    chunk = _positive_int("--chunk-rows", chunk_rows) or DEFAULT_CHUNK_ROWS
    if seed < 0:
        raise DataError(f"--seed: must be >= 0, got {seed}")
    manifest = generate_to_parquet(out_dir, *sizes, seed, chunk, overwrite=overwrite)  # type: ignore[arg-type]
    rows = ", ".join(f"{name}={t['rows']}" for name, t in manifest["tables"].items())
    click.echo(f"wrote {out_dir}: {rows} (seed {seed}, {sum(manifest['seconds'].values()):.1f} s)")


@data.command()
@click.option("--source", required=True, help="folder PATH of canonical tables (or movielens / synthetic)")
@click.option("--report", "report", type=click.Path(dir_okay=False), default=None,
              help="write the Evidently HTML report here")
@click.option("--reference", default=None, help="reference dataset for the drift checks (warnings)")
@click.option("--max-age-days", type=float, default=None, help="freshness limit in days (warning; off by default)")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="write the machine-readable result")
def validate(source: str, report: str | None, reference: str | None, max_age_days: float | None,
             json_out: str | None) -> None:
    """Check schema, nulls, ranges, duplicates, referential integrity, freshness; exit 1 on a blocking failure."""
    from smartreco.validation import load_raw, validate_data

    result = validate_data(load_raw(source), reference=load_raw(reference) if reference else None,
                           max_age_days=max_age_days)
    if report:
        from smartreco.validation.report import write_html_report

        write_html_report(result, report)
    if json_out:
        result.to_json(json_out)
    click.echo(result.to_markdown())
    result.raise_for_status()
