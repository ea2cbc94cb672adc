"""`smartreco items add`: new catalogue rows servable before the next retrain (ARCHITECTURE §8).

A thin shell over :mod:`smartreco.serving.live_items` (validation, the shared store) and
:mod:`smartreco.serving.live_encode` (content vectors in each served bundle's space). Runs in the pipeline
venv, where the content encoders are; the graph nodes only read the stored vectors.
"""

from __future__ import annotations

import json

import click


@click.group()
def items() -> None:
    """Catalogue items the served models have not been trained on yet."""


@items.command("add")
@click.option(
    "--source",
    required=True,
    help="CSV or parquet of item rows (item_id, title, category, ...) or a dataset folder with an items table",
)
@click.option(
    "--bundle",
    "bundles",
    multiple=True,
    required=True,
    help="serving bundle the graph serves (folder, file:// or models:/ URI); repeat for every arm's bundle",
)
@click.option(
    "--catalogue",
    default=None,
    help="the items the bundles were trained on: movielens, a dataset folder or an items table (the content "
    "encoder is re-fitted on them and checked against the bundle); default: the bundle's own catalogue",
)
@click.option(
    "--state", default=None, help="redis://HOST:PORT/DB: the state every replica shares (default: SMARTRECO_STATE)"
)
@click.option(
    "--graph-state", default=None, help="SQLite graph state file of a local graph (default: SMARTRECO_GRAPH_STATE)"
)
@click.option("--json", "as_json", is_flag=True, help="print the counts as JSON")
def add(
    source: str,
    bundles: tuple[str, ...],
    catalogue: str | None,
    state: str | None,
    graph_state: str | None,
    as_json: bool,
) -> None:
    """Validate new item rows, encode them per bundle and store them where the graph nodes read them."""
    from smartreco.errors import DataError
    from smartreco.serving.live_encode import add_for_bundle
    from smartreco.serving.live_items import open_live_store, read_rows, validate_rows
    from smartreco.serving.model_uri import load_bundle

    if state and graph_state:
        raise DataError("--state and --graph-state: give one (Redis for replicas, a SQLite file for one pod)")
    rows = validate_rows(read_rows(source))
    reference = None
    if catalogue:
        from pathlib import Path

        from smartreco.data.sources import load_source

        is_table = Path(catalogue).suffix in (".csv", ".parquet")
        reference = validate_rows(read_rows(catalogue)) if is_table else load_source(catalogue).items
    store = open_live_store(state or graph_state)
    report = {}
    for uri in bundles:
        bundle = load_bundle(uri)
        result = add_for_bundle(bundle, rows, store, reference)
        report[uri] = {
            "bundle_version": str(getattr(bundle, "version", "unknown")),
            "added": len(result.added),
            "duplicates": len(result.duplicates),
            "added_ids": result.added,
        }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for uri, r in report.items():
        click.echo(f"{uri} ({r['bundle_version']}): {r['added']} added, {r['duplicates']} duplicate(s)")
