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
    help="serving bundle (folder, file:// or models:/ URI), repeatable; default: every bundle the graph's CB and "
    "hybrid nodes name in --manifest (models:/ URIs resolved with MLflow)",
)
@click.option("--manifest", default=None, help="SeldonDeployment YAML (default: manifests/base/seldon/...)")
@click.option(
    "--catalogue",
    default=None,
    help="the items the bundles were trained on: movielens, a dataset folder or an items table (the content "
    "encoder is re-fitted on them and checked against the bundle); default: the training source the bundle's "
    "manifest records",
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
    manifest: str | None,
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
    local = dict.fromkeys(bundles) if bundles else graph_bundles(manifest)
    report: dict[str, dict] = {}
    first_of: dict[str, str] = {}  # bundle version -> the first URI that served it (the registry names one
    for uri, path in local.items():  # bundle under several model names)
        bundle = load_bundle(path or uri)
        version = str(getattr(bundle, "version", "unknown"))
        if version in first_of:
            report[uri] = {**report[first_of[version]], "same_bundle_as": first_of[version]}
            continue
        first_of[version] = uri
        result = add_for_bundle(bundle, rows, store, reference)
        report[uri] = {
            "bundle_version": version,
            "added": len(result.added),
            "duplicates": len(result.duplicates),
            "added_ids": result.added,
        }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for uri, r in report.items():
        same = f" (the bundle of {r['same_bundle_as']})" if "same_bundle_as" in r else ""
        click.echo(f"{uri} ({r['bundle_version']}): {r['added']} added, {r['duplicates']} duplicate(s){same}")


#: the node parameters whose bundles serve live items (the nodes that retrieve or rank by content)
LIVE_PARAMS = {
    "CBModel": ("model_uri",),
    "HybridCombiner": ("model_uri",),
    "HybridRecommender": ("model_uri", "cb_model_uri"),
}


def live_bundle_uris(manifest: str | None) -> list[str]:
    """The model URIs of the graph's nodes that serve live items (CB, hybrid combiner, fused arm)."""
    from inference_graph.executor.graph import load_graph

    return sorted(
        {
            str(value)
            for node in load_graph(manifest).nodes()
            for key, value in node.kwargs().items()
            if key in LIVE_PARAMS.get(str(node.class_name).rpartition(".")[2], ()) and value
        }
    )


def graph_bundles(manifest: str | None) -> dict[str, str | None]:
    """``{model URI: local folder or None}`` of :func:`live_bundle_uris`, ``models:/`` URIs resolved with MLflow
    the way ``smartreco serve`` resolves them."""
    from smartreco.cli.serve import _resolve_model_uris
    from smartreco.errors import SmartRecoError

    uris = live_bundle_uris(manifest)
    if not uris:
        raise SmartRecoError("--bundle: the graph names no CB or hybrid bundle; give --bundle")
    resolved = _resolve_model_uris(manifest)
    return {uri: resolved.get(uri) for uri in uris}
